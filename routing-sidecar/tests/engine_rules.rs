//! The plan's unit test matrix, against the engine's public API.

use fabric_core::config::{DampeningConfig, TieBreaker};
use fabric_core::message::Message;
use fabric_core::policy::{MatchList, PolicyMode, RoutePolicy};
use fabric_core::stats::RejectReason;
use fabric_core::{NodeId, Timestamp};
use fabric_engine::{CandidateStatus, Criterion, Effect, RouteEvent};
use fabric_testkit::engine_builders::*;

#[test]
fn plain_defaults_accept_unsigned_and_select_lowest_cost() {
    let mut e = engine(&["a", "b"]);
    let fx = send(&mut e, t(0), "a", ann("a", "x", &["a", "o"], 20, 1));
    assert!(fx.iter().any(|f| matches!(f, Effect::RouteChanged { best: Some(b), .. } if b.next_hop.as_str() == "a")));
    send(&mut e, t(1), "b", ann("b", "x", &["b", "o"], 10, 1));
    assert_eq!(next_hop(&e, "x").as_deref(), Some("b"));
    // Link cost (default 1) is added to the received cost.
    assert_eq!(e.best_route("x").unwrap().metrics.cost, 11);
    let stats = e.stats();
    assert_eq!(stats.routes_active_total, 1);
    assert_eq!(stats.candidates_stored, 2);
    assert_eq!(stats.announcements_accepted, 2);
}

#[test]
fn loop_mismatch_unknown_neighbor_and_bad_structure_are_rejected_with_reasons() {
    let mut e = engine(&["a"]);
    let cases = [
        ("a", ann("a", "x", &["a", SELF, "o"], 1, 1), RejectReason::LoopDetected),
        ("a", ann("b", "x", &["b", "o"], 1, 1), RejectReason::AdvertiserMismatch),
        ("a", ann("a", "x", &["z", "o"], 1, 1), RejectReason::AdvertiserMismatch),
        ("zz", ann("zz", "x", &["zz"], 1, 1), RejectReason::UnknownNeighbor),
        ("a", ann("a", "x", &["a", "o", "a"], 1, 1), RejectReason::InvalidPath),
        (
            "a",
            {
                let mut a = ann("a", "x", &["a", "o"], 1, 1);
                a.hop_count = 7;
                a
            },
            RejectReason::InvalidPath,
        ),
        (
            "a",
            {
                let mut a = ann("a", "x", &["a"], 1, 1);
                a.metrics.reliability = 1.5;
                a
            },
            RejectReason::InvalidMetrics,
        ),
        (
            "a",
            {
                let mut a = ann("a", "x", &["a"], 1, 1);
                a.ttl_ms = 0;
                a
            },
            RejectReason::InvalidTtl,
        ),
    ];
    for (from, announcement, reason) in cases {
        let fx = send(&mut e, t(0), from, announcement);
        assert_eq!(rejected_reasons(&fx), vec![reason]);
        assert!(rejects(&e, reason) >= 1);
    }
    assert_eq!(e.stats().candidates_stored, 0);
}

#[test]
fn older_and_replayed_epochs_are_rejected_and_equal_epoch_refreshes() {
    let mut e = engine(&["a"]);
    send(&mut e, t(0), "a", ann("a", "x", &["a"], 5, 10));
    let fx = send(&mut e, t(1), "a", ann("a", "x", &["a"], 5, 9));
    assert_eq!(rejected_reasons(&fx), vec![RejectReason::StaleEpoch]);
    // Same epoch, same content: a refresh that extends the TTL.
    let fx = send(&mut e, t(50_000), "a", ann("a", "x", &["a"], 5, 10));
    assert!(fx.iter().any(|f| matches!(f, Effect::Event(RouteEvent::Refreshed { .. }))));
    e.tick(t(100_000));
    assert!(e.best_route("x").is_some(), "refresh at 50 s moved expiry to 140 s");
    // Same epoch, different content.
    let fx = send(&mut e, t(50_001), "a", ann("a", "x", &["a"], 6, 10));
    assert_eq!(rejected_reasons(&fx), vec![RejectReason::EpochReuse]);
    // A withdrawal at epoch 11, then a replay of epoch 10: still stale.
    send(&mut e, t(50_002), "a", wd("a", "x", 11));
    assert!(e.best_route("x").is_none());
    let fx = send(&mut e, t(50_003), "a", ann("a", "x", &["a"], 5, 10));
    assert_eq!(rejected_reasons(&fx), vec![RejectReason::StaleEpoch]);
    let fx = send(&mut e, t(50_004), "a", wd("a", "x", 11));
    assert_eq!(rejected_reasons(&fx), vec![RejectReason::StaleEpoch]);
}

#[test]
fn signatures_valid_invalid_unsigned_unknown_and_spoofed() {
    let a_key = identity("a", "k1");
    let mallory = identity("mallory", "k1");
    let mut config = config_with(&["a"]);
    config.security.require_signatures = true;
    config.security.trusted_keys = vec![trusted("a", &a_key)].into();
    let mut e = fabric_engine::Engine::new(config, t(0)).unwrap();

    let mut good = ann("a", "x", &["a"], 1, 1);
    a_key.sign_announcement(&mut good);
    assert!(rejected_reasons(&send(&mut e, t(0), "a", good.clone())).is_empty());
    assert!(e.best_route("x").unwrap().signed);

    let mut tampered = ann("a", "y", &["a"], 1, 1);
    a_key.sign_announcement(&mut tampered);
    tampered.metrics.cost = 0;
    assert_eq!(rejected_reasons(&send(&mut e, t(0), "a", tampered)), vec![RejectReason::BadSignature]);

    let unsigned = ann("a", "z", &["a"], 1, 1);
    assert_eq!(rejected_reasons(&send(&mut e, t(0), "a", unsigned)), vec![RejectReason::Unsigned]);

    // Spoofing: mallory claims to be `a` with its own key under a's key id.
    let mut spoofed = ann("a", "w", &["a"], 0, 5);
    mallory.sign_announcement(&mut spoofed);
    assert_eq!(rejected_reasons(&send(&mut e, t(0), "a", spoofed)), vec![RejectReason::BadSignature]);

    let other = identity("a", "k9");
    let mut unknown = ann("a", "v", &["a"], 1, 1);
    other.sign_announcement(&mut unknown);
    assert_eq!(rejected_reasons(&send(&mut e, t(0), "a", unknown)), vec![RejectReason::UnknownKey]);
    assert_eq!(e.stats().routes_active_total, 1);
    assert_eq!(e.stats().signatures_verified_total, 1);
}

/// A signed announcement recorded by an attacker and replayed after its
/// withdrawal's tombstone expired (`timers.maxTtl`): protocol v2 signs the
/// issue time, so the replay is too old; a v1 one (no issue time) is only
/// refused once `security.refuseV1Messages` is set.
#[test]
fn a_signed_announcement_replayed_after_its_tombstone_expired_is_refused() {
    let a_key = identity("a", "k1");
    let mut config = config_with(&["a"]);
    config.security.require_signatures = true;
    config.security.trusted_keys = vec![trusted("a", &a_key)].into();
    let start = 1_800_000_000_000;
    let mut e = fabric_engine::Engine::new(config.clone(), t(start)).unwrap();
    let signed = |mut a: fabric_core::RouteAnnouncement, issued: Option<u64>| {
        a.issued_at_ms = issued;
        a_key.sign_announcement(&mut a);
        a
    };
    let recorded = signed(ann("a", "x", &["a"], 1, 1), Some(start));
    assert!(rejected_reasons(&send(&mut e, t(start), "a", recorded.clone())).is_empty());
    let mut withdrawal = wd("a", "x", 2);
    withdrawal.issued_at_ms = Some(start + 1_000);
    a_key.sign_withdrawal(&mut withdrawal);
    send(&mut e, t(start + 1_000), "a", withdrawal);
    assert_eq!(next_hop(&e, "x"), None);

    // While the tombstone lives, its epoch refuses the replay.
    let replay = |e: &mut fabric_engine::Engine, at: u64, a: &fabric_core::RouteAnnouncement| {
        rejected_reasons(&send(e, t(at), "a", a.clone()))
    };
    assert_eq!(replay(&mut e, start + 2_000, &recorded), vec![RejectReason::StaleEpoch]);
    // After it (maxTtl, 600 s), the signed issue time does.
    let later = start + 1_000 + 600_000 + 1;
    e.tick(t(later));
    assert_eq!(replay(&mut e, later, &recorded), vec![RejectReason::StaleIssueTime]);
    assert_eq!(next_hop(&e, "x"), None);
    assert_eq!(rejects(&e, RejectReason::StaleIssueTime), 1);

    // What the advertiser sends now is fresh; from beyond the clock skew
    // (30 s) it is not.
    let fresh = signed(ann("a", "x", &["a"], 1, 3), Some(later));
    assert!(replay(&mut e, later, &fresh).is_empty());
    let future = signed(ann("a", "y", &["a"], 1, 1), Some(later + 31_000));
    assert_eq!(replay(&mut e, later, &future), vec![RejectReason::FutureIssueTime]);

    // v1 (no issue time): the tombstone is the only guard, so once it has
    // expired the replay is taken, and counted, unless v1 is refused.
    let v1_recorded = signed(ann("a", "z", &["a"], 1, 1), None);
    let mut v1 = fabric_engine::Engine::new(config.clone(), t(start)).unwrap();
    assert!(replay(&mut v1, start, &v1_recorded).is_empty());
    assert_eq!(v1.stats().v1_messages_accepted_total, 1);
    config.security.refuse_v1_messages = true;
    let mut strict = fabric_engine::Engine::new(config, t(start)).unwrap();
    assert_eq!(replay(&mut strict, start, &v1_recorded), vec![RejectReason::V1Message]);
}

#[test]
fn unknown_key_is_accepted_unverified_when_signatures_are_optional() {
    let mut e = engine(&["a"]);
    let mut signed = ann("a", "x", &["a"], 1, 1);
    identity("a", "k1").sign_announcement(&mut signed);
    assert!(rejected_reasons(&send(&mut e, t(0), "a", signed)).is_empty());
    let best = e.best_route("x").unwrap();
    assert!(!best.signed);
    assert_eq!(e.stats().unverified_signatures_accepted_total, 1);
}

#[test]
fn key_rotation_overlap_accepts_both_keys_then_rejects_the_expired_one() {
    let old = identity("a", "old");
    let new = identity("a", "new");
    let mut config = config_with(&["a"]);
    config.security.require_signatures = true;
    let mut old_entry = trusted("a", &old);
    old_entry.valid_until = Some("1970-01-01T00:01:40Z".into()); // 100 s
    let mut new_entry = trusted("a", &new);
    new_entry.valid_from = Some("1970-01-01T00:00:50Z".into()); // 50 s
    config.security.trusted_keys = vec![old_entry, new_entry].into();
    let mut e = fabric_engine::Engine::new(config, t(0)).unwrap();
    let signed = |key: &fabric_core::security::SigningIdentity, epoch| {
        let mut a = ann("a", "x", &["a"], 1, epoch);
        key.sign_announcement(&mut a);
        a
    };
    assert!(rejected_reasons(&send(&mut e, t(10_000), "a", signed(&old, 1))).is_empty());
    assert_eq!(rejected_reasons(&send(&mut e, t(10_000), "a", signed(&new, 2))), vec![RejectReason::KeyNotYetValid]);
    // Overlap: both verify.
    assert!(rejected_reasons(&send(&mut e, t(60_000), "a", signed(&old, 3))).is_empty());
    assert!(rejected_reasons(&send(&mut e, t(60_000), "a", signed(&new, 4))).is_empty());
    // After the old key's window.
    assert_eq!(rejected_reasons(&send(&mut e, t(100_000), "a", signed(&old, 5))), vec![RejectReason::KeyExpired]);
    assert!(rejected_reasons(&send(&mut e, t(100_000), "a", signed(&new, 6))).is_empty());
}

#[test]
fn allowed_advertisers_reject_everyone_else() {
    let mut config = config_with(&["a", "b"]);
    config.security.allowed_advertisers = Some(vec!["a".into()]);
    let mut e = fabric_engine::Engine::new(config, t(0)).unwrap();
    send(&mut e, t(0), "a", ann("a", "x", &["a"], 1, 1));
    let fx = send(&mut e, t(0), "b", ann("b", "x", &["b"], 0, 1));
    assert_eq!(rejected_reasons(&fx), vec![RejectReason::UnauthorizedAdvertiser]);
    assert_eq!(next_hop(&e, "x").as_deref(), Some("a"));
}

fn deny_tag(tag: &str) -> RoutePolicy {
    let mut policy = RoutePolicy::default();
    policy.tags.deny = vec![tag.into()];
    policy
}

#[test]
fn import_policy_allow_deny_on_advertisers_destinations_tags_and_origins() {
    let mut config = config_with(&["a", "b"]);
    config.import_policy.destinations =
        MatchList { allow: Some(vec!["prod-*".into()]), deny: vec!["prod-secret".into()] };
    config.import_policy.origins.deny = vec!["evil".into()];
    config.import_policy.tags.deny = vec!["bronze".into()];
    let mut e = fabric_engine::Engine::new(config, t(0)).unwrap();
    let cases = [
        (ann("a", "dev-1", &["a"], 1, 1), Some(RejectReason::PolicyDestination)),
        (ann("a", "prod-secret", &["a"], 1, 1), Some(RejectReason::PolicyDestination)),
        (ann("a", "prod-1", &["a", "evil"], 1, 1), Some(RejectReason::PolicyOrigin)),
        (with_tags(ann("a", "prod-2", &["a"], 1, 1), &["gold", "bronze"]), Some(RejectReason::PolicyTag)),
        (with_tags(ann("a", "prod-3", &["a"], 1, 1), &["gold"]), None),
    ];
    for (announcement, expected) in cases {
        let dest = announcement.destination.to_string();
        let fx = send(&mut e, t(0), "a", announcement);
        assert_eq!(rejected_reasons(&fx), expected.into_iter().collect::<Vec<_>>(), "{dest}");
        assert_eq!(e.best_route(&dest).is_some(), expected.is_none(), "{dest}");
    }
}

#[test]
fn neighbor_import_policy_replaces_the_global_one() {
    let mut config = config_with(&["a", "b"]);
    config.import_policy = deny_tag("gold");
    config.neighbors[1].import = Some(RoutePolicy::default()); // b: accept all
    let mut e = fabric_engine::Engine::new(config, t(0)).unwrap();
    let fx = send(&mut e, t(0), "a", with_tags(ann("a", "x", &["a"], 1, 1), &["gold"]));
    assert_eq!(rejected_reasons(&fx), vec![RejectReason::PolicyTag]);
    let fx = send(&mut e, t(0), "b", with_tags(ann("b", "x", &["b"], 1, 1), &["gold"]));
    assert!(rejected_reasons(&fx).is_empty());
    assert_eq!(next_hop(&e, "x").as_deref(), Some("b"));
}

#[test]
fn dry_run_policy_counts_what_it_would_reject_but_accepts() {
    let mut config = config_with(&["a"]);
    config.import_policy = deny_tag("gold");
    config.import_policy.mode = PolicyMode::DryRun;
    let mut e = fabric_engine::Engine::new(config, t(0)).unwrap();
    let fx = send(&mut e, t(0), "a", with_tags(ann("a", "x", &["a"], 1, 1), &["gold"]));
    assert!(rejected_reasons(&fx).is_empty());
    assert!(
        fx.iter()
            .any(|f| matches!(f, Effect::Event(RouteEvent::DryRunWouldReject { reason: RejectReason::PolicyTag, .. })))
    );
    assert!(e.best_route("x").is_some());
    let stats = e.stats();
    assert_eq!(stats.dry_run_rejects_total.get("policy_tag"), Some(&1));
    assert!(stats.announcement_rejects_total.is_empty());
    let trace = e.explain("x", t(0)).unwrap();
    assert!(trace.candidates[0].dry_run_violation.as_deref().unwrap().contains("gold"));
}

fn sends_to(effects: &[Effect]) -> Vec<(String, &'static str)> {
    effects
        .iter()
        .flat_map(|f| match f {
            Effect::Send { to, message } => {
                let kind = match **message {
                    Message::Announcement(_) => "announce",
                    Message::Withdrawal(_) => "withdraw",
                    Message::EndOfTable { .. } => "eot",
                };
                to.iter().map(|to| (to.to_string(), kind)).collect()
            }
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn export_policy_per_neighbor_split_horizon_and_withdrawals_bypass_export() {
    let mut config = config_with(&["a", "b", "c"]);
    config.neighbors[2].export = Some(deny_tag("private")); // c gets no private routes
    let mut e = fabric_engine::Engine::new(config, t(0)).unwrap();
    for n in ["a", "b", "c"] {
        e.neighbor_up(t(0), &NodeId::new(n));
    }
    let fx = e.drain_effects(t(0));
    assert_eq!(sends_to(&fx), vec![("a".into(), "eot"), ("b".into(), "eot"), ("c".into(), "eot")]);
    let fx = send(&mut e, t(0), "a", with_tags(ann("a", "x", &["a"], 1, 1), &["private"]));
    // Not back to a (split horizon), not to c (export policy).
    assert_eq!(sends_to(&fx), vec![("b".into(), "announce")]);
    let fx = send(&mut e, t(0), "a", ann("a", "y", &["a", "c"], 1, 1));
    // c is on the path: it would drop it as a loop.
    assert_eq!(sends_to(&fx), vec![("b".into(), "announce")]);
    // Now the route stops being exportable to b: b must get a withdrawal even though
    // the new export policy would not allow the route.
    let mut config = e.config().clone();
    config.neighbors[1].export = Some(deny_tag("private"));
    e.apply_config(t(1), config).unwrap();
    assert_eq!(sends_to(&e.drain_effects(t(1))), vec![("b".into(), "withdraw")]);
    let fx = send(&mut e, t(2), "a", wd("a", "y", 2));
    assert_eq!(sends_to(&fx), vec![("b".into(), "withdraw")]);
}

#[test]
fn tie_breakers_apply_in_order_and_are_configurable() {
    let mut e = engine(&["a", "b", "c", "d"]);
    // Equal cost; b has fewer hops.
    send(&mut e, t(0), "a", ann("a", "x", &["a", "m", "o"], 10, 1));
    send(&mut e, t(0), "b", ann("b", "x", &["b", "o"], 10, 1));
    assert_eq!(next_hop(&e, "x").as_deref(), Some("b"));
    // Equal hops; lower latency wins.
    let mut c = ann("c", "x", &["c", "o"], 10, 1);
    c.metrics.latency_us = 50;
    send(&mut e, t(0), "c", c);
    assert_eq!(next_hop(&e, "x").as_deref(), Some("c"));
    // Equal latency; higher reliability wins.
    let mut d = ann("d", "x", &["d", "o"], 10, 1);
    d.metrics.latency_us = 50;
    d.metrics.reliability = 1.0;
    let mut c2 = ann("c", "x", &["c", "o"], 10, 2);
    c2.metrics.latency_us = 50;
    c2.metrics.reliability = 0.9;
    send(&mut e, t(0), "c", c2);
    send(&mut e, t(0), "d", d);
    assert_eq!(next_hop(&e, "x").as_deref(), Some("d"));
    let trace = e.explain("x", t(0)).unwrap();
    let criteria: Vec<_> = trace
        .candidates
        .iter()
        .map(|c| match &c.status {
            CandidateStatus::Selected => (c.next_hop.to_string(), None),
            CandidateStatus::Lost { criterion, .. } => (c.next_hop.to_string(), Some(*criterion)),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        criteria,
        vec![
            ("d".into(), None),
            ("c".into(), Some(Criterion::Reliability)),
            ("b".into(), Some(Criterion::Latency)),
            ("a".into(), Some(Criterion::HopCount)),
        ]
    );
    // Latency before hop count: a (3 hops, latency 10) beats b (2 hops, latency 100).
    let mut config = config_with(&["a", "b"]);
    config.selection.tie_breakers = vec![TieBreaker::Latency, TieBreaker::HopCount];
    let mut e = fabric_engine::Engine::new(config, t(0)).unwrap();
    let mut a = ann("a", "x", &["a", "m", "o"], 10, 1);
    a.metrics.latency_us = 10;
    send(&mut e, t(0), "a", a);
    send(&mut e, t(0), "b", ann("b", "x", &["b", "o"], 10, 1));
    assert_eq!(next_hop(&e, "x").as_deref(), Some("a"));
}

#[test]
fn complete_ties_fall_back_to_stable_advertiser_order() {
    for order in [["a", "b"], ["b", "a"]] {
        let mut e = engine(&["a", "b"]);
        for n in order {
            send(&mut e, t(0), n, ann(n, "x", &[n, "o"], 10, 1));
        }
        assert_eq!(next_hop(&e, "x").as_deref(), Some("a"));
        let trace = e.explain("x", t(0)).unwrap();
        assert!(matches!(trace.candidates[1].status, CandidateStatus::Lost { criterion: Criterion::Advertiser, .. }));
    }
}

#[test]
fn withdrawal_removes_at_once_and_hold_down_rejects_until_it_ends() {
    let mut config = config_with(&["a", "b"]);
    config.stability.hold_down = secs(10);
    let mut e = fabric_engine::Engine::new(config, t(0)).unwrap();
    send(&mut e, t(0), "a", ann("a", "x", &["a"], 1, 1));
    send(&mut e, t(0), "b", ann("b", "x", &["b"], 5, 1));
    let fx = send(&mut e, t(1_000), "a", wd("a", "x", 2));
    assert!(fx.iter().any(|f| matches!(f, Effect::Event(RouteEvent::HeldDown { .. }))));
    assert_eq!(next_hop(&e, "x").as_deref(), Some("b"));
    let fx = send(&mut e, t(2_000), "a", ann("a", "x", &["a"], 1, 3));
    assert_eq!(rejected_reasons(&fx), vec![RejectReason::HoldDown]);
    assert!(e.is_held_down("x", "a"));
    assert_eq!(next_hop(&e, "x").as_deref(), Some("b"));
    assert_eq!(e.stats().hold_down_rejects, 1);
    assert_eq!(e.next_deadline(), Some(t(11_000)));
    e.tick(t(10_999));
    assert_eq!(next_hop(&e, "x").as_deref(), Some("b"));
    // The held route comes back at the end of hold-down without a re-announcement.
    e.tick(t(11_000));
    assert_eq!(next_hop(&e, "x").as_deref(), Some("a"));
    let stats = e.stats();
    assert_eq!((stats.withdrawals_received, stats.withdrawals_applied, stats.routes_withdrawn_total), (1, 1, 1));
}

#[test]
fn flapping_route_is_suppressed_then_reused_after_decay() {
    let mut config = config_with(&["a", "b"]);
    config.stability.dampening =
        DampeningConfig { enabled: true, half_life: secs(60), max_suppress: secs(600), ..DampeningConfig::default() };
    let mut e = fabric_engine::Engine::new(config, t(0)).unwrap();
    let long_lived = |mut a: fabric_core::RouteAnnouncement| {
        a.ttl_ms = 600_000; // outlives the suppression
        a
    };
    send(&mut e, t(0), "b", long_lived(ann("b", "x", &["b"], 50, 1)));
    let mut epoch = 1;
    for i in 0..3 {
        epoch += 1;
        send(&mut e, t(i * 10), "a", ann("a", "x", &["a"], 1, epoch));
        epoch += 1;
        send(&mut e, t(i * 10 + 5), "a", wd("a", "x", epoch));
    }
    epoch += 1;
    let fx = send(&mut e, t(100), "a", long_lived(ann("a", "x", &["a"], 1, epoch)));
    assert_eq!(rejected_reasons(&fx), vec![RejectReason::Suppressed]);
    assert_eq!(next_hop(&e, "x").as_deref(), Some("b"), "suppressed route is not used");
    let stats = e.stats();
    assert_eq!(stats.routes_suppressed_total, 1);
    assert_eq!(stats.routes_suppressed_now, 1);
    let trace = e.explain("x", t(100)).unwrap();
    let suppressed = trace.candidates.iter().find(|c| c.next_hop.as_str() == "a").unwrap();
    let CandidateStatus::Ineligible { reason: RejectReason::Suppressed, until: Some(reuse_at), .. } = suppressed.status
    else {
        panic!("expected suppressed, got {:?}", suppressed.status);
    };
    e.tick(Timestamp(reuse_at.as_millis() - 1));
    assert_eq!(next_hop(&e, "x").as_deref(), Some("b"));
    e.tick(reuse_at);
    assert_eq!(next_hop(&e, "x").as_deref(), Some("a"), "recovered after the penalty decayed");
    assert_eq!(e.stats().routes_reused_total, 1);
}

/// The table's gauges (`/stats`, `/metrics`) are kept as the table changes,
/// not recounted per scrape: they follow a held-down candidate withdrawn
/// while held, and a suppressed one lost with its neighbor.
#[test]
fn gauges_follow_held_down_and_suppressed_candidates_out_of_the_table() {
    let gauges = |e: &fabric_engine::Engine| {
        let s = e.stats();
        (s.routes_active_total, s.candidates_stored, s.routes_held_down, s.routes_suppressed_now)
    };
    let mut config = config_with(&["a", "b"]);
    config.stability.hold_down = secs(10);
    let mut e = fabric_engine::Engine::new(config, t(0)).unwrap();
    send(&mut e, t(0), "a", ann("a", "x", &["a"], 1, 1));
    send(&mut e, t(0), "b", ann("b", "x", &["b"], 5, 1));
    send(&mut e, t(1_000), "a", wd("a", "x", 2));
    send(&mut e, t(2_000), "a", ann("a", "x", &["a"], 1, 3));
    assert_eq!(gauges(&e), (1, 2, 1, 0), "a's route stored, held down");
    send(&mut e, t(3_000), "a", wd("a", "x", 4));
    assert_eq!(gauges(&e), (1, 1, 0, 0), "withdrawn while held down");
    send(&mut e, t(4_000), "b", wd("b", "x", 2));
    assert_eq!(gauges(&e), (0, 0, 0, 0));
    e.verify_invariants().unwrap();

    let mut config = config_with(&["a", "b"]);
    config.stability.dampening =
        DampeningConfig { enabled: true, half_life: secs(60), max_suppress: secs(600), ..DampeningConfig::default() };
    let mut e = fabric_engine::Engine::new(config, t(0)).unwrap();
    for epoch in (1..7).step_by(2) {
        send(&mut e, t(epoch * 10), "a", ann("a", "x", &["a"], 1, epoch));
        send(&mut e, t(epoch * 10 + 5), "a", wd("a", "x", epoch + 1));
    }
    send(&mut e, t(100), "a", ann("a", "x", &["a"], 1, 9));
    assert_eq!(gauges(&e), (0, 1, 0, 1), "stored, suppressed, not in use");
    e.neighbor_down(t(200), &NodeId::new("a"), false);
    e.drain_effects(t(200));
    assert_eq!(gauges(&e), (0, 0, 0, 0), "lost with its neighbor");
    e.verify_invariants().unwrap();
}

#[test]
fn neighbor_loss_withdraws_everything_learned_from_it() {
    let mut e = engine(&["a", "b"]);
    for d in ["x", "y", "z"] {
        send(&mut e, t(0), "a", ann("a", d, &["a"], 1, 1));
    }
    send(&mut e, t(0), "b", ann("b", "x", &["b"], 9, 1));
    e.neighbor_down(t(5), &NodeId::new("a"), false);
    let fx = e.drain_effects(t(5));
    let withdrawn = fx.iter().filter(|f| matches!(f, Effect::Event(RouteEvent::Withdrawn { .. }))).count();
    assert_eq!(withdrawn, 3);
    assert_eq!(next_hop(&e, "x").as_deref(), Some("b"));
    assert!(e.best_route("y").is_none());
    assert_eq!(e.stats().candidates_stored, 1);
}

#[test]
fn graceful_restart_keeps_stale_routes_until_end_of_table_or_window() {
    let mut e = engine(&["a"]);
    send(&mut e, t(0), "a", ann("a", "x", &["a"], 1, 1));
    send(&mut e, t(0), "a", ann("a", "y", &["a"], 1, 1));
    e.neighbor_down(t(10), &NodeId::new("a"), true);
    assert!(e.best_route("x").is_some(), "kept during the restart");
    e.neighbor_up(t(20), &NodeId::new("a"));
    send(&mut e, t(20), "a", ann("a", "x", &["a"], 1, 2));
    e.receive(t(21), &NodeId::new("a"), Message::EndOfTable { advertiser: NodeId::new("a") });
    e.drain_effects(t(21));
    assert!(e.best_route("x").is_some(), "refreshed after restart");
    assert!(e.best_route("y").is_none(), "not re-sent before end-of-table: purged");
    assert_eq!(e.stats().routes_purged_stale_total, 1);
    // Without end-of-table the window purges.
    e.neighbor_down(t(30), &NodeId::new("a"), true);
    e.tick(t(30) + e.config().timers.graceful_restart_window);
    assert!(e.best_route("x").is_none());
}

#[test]
fn a_session_that_drops_inside_the_restart_window_keeps_the_routes_stale_until_the_window_ends() {
    let mut e = engine(&["a"]);
    // A TTL beyond the window, so that only the window can end the route.
    let mut long_lived = ann("a", "x", &["a"], 1, 1);
    long_lived.ttl_ms = 600_000;
    send(&mut e, t(0), "a", long_lived);
    e.neighbor_down(t(10), &NodeId::new("a"), true);
    let window_end = t(10) + e.config().timers.graceful_restart_window;
    // A new session comes up and ends before a's end-of-table, not
    // gracefully (a node still shutting down, say).
    e.neighbor_up(t(20), &NodeId::new("a"));
    e.neighbor_down(t(21), &NodeId::new("a"), false);
    e.drain_effects(t(21));
    assert!(e.best_route("x").is_some(), "still stale inside the announced window");
    e.tick(fabric_core::Timestamp(window_end.0 - 1));
    assert!(e.best_route("x").is_some(), "the window is not extended, nor cut short");
    e.tick(window_end);
    assert!(e.best_route("x").is_none(), "purged when the original window ends");
    // Outside any window a drop withdraws at once.
    send(&mut e, window_end, "a", ann("a", "x", &["a"], 1, 2));
    e.neighbor_down(window_end, &NodeId::new("a"), false);
    assert!(e.best_route("x").is_none());
}

#[test]
fn ttl_expiry_is_the_last_resort() {
    let mut e = engine(&["a"]);
    let mut a = ann("a", "x", &["a"], 1, 1);
    a.ttl_ms = 5_000;
    send(&mut e, t(0), "a", a);
    assert_eq!(e.next_deadline(), Some(t(5_000)));
    e.tick(t(4_999));
    assert!(e.best_route("x").is_some());
    e.tick(t(5_000));
    assert!(e.best_route("x").is_none());
    assert_eq!(e.stats().routes_expired_total, 1);
}

#[test]
fn live_reload_removes_forbidden_routes_and_restores_allowed_ones_without_reannouncement() {
    let mut e = engine(&["a", "b"]);
    send(&mut e, t(0), "a", with_tags(ann("a", "x", &["a"], 1, 1), &["gold"]));
    send(&mut e, t(0), "b", ann("b", "x", &["b"], 5, 1));
    let mut config = e.config().clone();
    config.import_policy = deny_tag("gold");
    e.apply_config(t(1), config.clone()).unwrap();
    assert_eq!(next_hop(&e, "x").as_deref(), Some("b"));
    config.import_policy = RoutePolicy::default();
    e.apply_config(t(2), config).unwrap();
    assert_eq!(next_hop(&e, "x").as_deref(), Some("a"));
    assert_eq!(e.stats().config_reloads_total, 2);
}

#[test]
fn invalid_config_is_refused_with_the_field_and_the_old_one_stays() {
    let mut e = engine(&["a"]);
    send(&mut e, t(0), "a", ann("a", "x", &["a"], 1, 1));
    let mut bad = e.config().clone();
    bad.neighbors[0].link.reliability = 2.0;
    bad.import_policy = deny_tag("x");
    let error = e.apply_config(t(1), bad).unwrap_err();
    assert_eq!(error.field, "neighbors[0].link.reliability");
    assert_eq!(e.config().neighbors[0].link.reliability, 1.0);
    assert!(e.best_route("x").is_some());
    assert_eq!(e.stats().config_rejects_total, 1);
    let mut renamed = e.config().clone();
    renamed.node_id = "other".into();
    assert_eq!(e.apply_config(t(1), renamed).unwrap_err().field, "nodeId");
}

#[test]
fn link_metric_change_on_reload_reranks_without_reannouncement() {
    let mut e = engine(&["a", "b"]);
    send(&mut e, t(0), "a", ann("a", "x", &["a"], 10, 1));
    send(&mut e, t(0), "b", ann("b", "x", &["b"], 12, 1));
    assert_eq!(next_hop(&e, "x").as_deref(), Some("a"));
    let mut config = e.config().clone();
    config.neighbors[0].link.cost = 10;
    e.apply_config(t(1), config).unwrap();
    assert_eq!(next_hop(&e, "x").as_deref(), Some("b"));
}

#[test]
fn explain_lists_rejections_and_ineligible_candidates() {
    let mut config = config_with(&["a", "b"]);
    config.import_policy = deny_tag("bad");
    let mut e = fabric_engine::Engine::new(config, t(0)).unwrap();
    send(&mut e, t(0), "a", ann("a", "x", &["a", SELF], 1, 1));
    send(&mut e, t(0), "b", with_tags(ann("b", "x", &["b"], 1, 1), &["bad"]));
    let trace = e.explain("x", t(0)).unwrap();
    assert_eq!(trace.selected, None);
    assert_eq!(trace.rejections.len(), 2);
    assert_eq!(trace.rejections[0].reason, RejectReason::LoopDetected);
    assert_eq!(trace.rejections[1].reason, RejectReason::PolicyTag);
    let CandidateStatus::Ineligible { reason, detail, .. } = &trace.candidates[0].status else { panic!() };
    assert_eq!(*reason, RejectReason::PolicyTag);
    assert!(detail.contains("tag bad"), "{detail}");
    assert!(e.explain("never-heard", t(0)).is_none());
}

#[test]
fn route_limit_per_neighbor_rejects_new_destinations_only() {
    let mut config = config_with(&["a"]);
    config.limits.max_routes_per_neighbor = Some(2);
    let mut e = fabric_engine::Engine::new(config, t(0)).unwrap();
    send(&mut e, t(0), "a", ann("a", "x", &["a"], 1, 1));
    send(&mut e, t(0), "a", ann("a", "y", &["a"], 1, 1));
    let fx = send(&mut e, t(0), "a", ann("a", "z", &["a"], 1, 1));
    assert_eq!(rejected_reasons(&fx), vec![RejectReason::NeighborRouteLimit]);
    // Updating an existing one is fine.
    assert!(rejected_reasons(&send(&mut e, t(0), "a", ann("a", "x", &["a"], 2, 2))).is_empty());
}

#[test]
fn malformed_frames_are_counted_and_reported() {
    let mut e = engine(&["a"]);
    let error = e.receive_frame(t(0), &NodeId::new("a"), &[0xff, 0x01, 0x02]).unwrap_err();
    assert!(!error.to_string().is_empty());
    assert_eq!(rejects(&e, RejectReason::Malformed), 1);
    let frame = fabric_core::wire::encode(&Message::Announcement(ann("a", "x", &["a"], 1, 1)));
    e.receive_frame(t(0), &NodeId::new("a"), &frame).unwrap();
    assert!(e.best_route("x").is_some());
}

#[test]
fn local_routes_are_originated_preferred_and_withdrawn_on_removal() {
    let mut config = config_with(&["a"]);
    config.originate = vec![fabric_core::config::LocalRoute {
        destination: "mine".into(),
        cost: 100,
        latency_us: 0,
        reliability: 1.0,
        tags: vec![],
    }];
    let mut e = fabric_engine::Engine::new(config, t(0)).unwrap();
    e.neighbor_up(t(0), &NodeId::new("a"));
    let fx = e.drain_effects(t(0));
    assert_eq!(sends_to(&fx), vec![("a".into(), "announce"), ("a".into(), "eot")]);
    send(&mut e, t(0), "a", ann("a", "mine", &["a"], 0, 1));
    assert!(e.best_route("mine").unwrap().local, "local origin beats a cheaper learned route");
    let mut config = e.config().clone();
    config.originate.clear();
    e.apply_config(t(1), config).unwrap();
    assert_eq!(next_hop(&e, "mine").as_deref(), Some("a"));
}

/// What a node exports, a neighbor with the same limits must be able to
/// decode: a path at `maxPathLength` is used here but not advertised (it
/// would have one hop more), and the refusal is counted and explained.
#[test]
fn a_route_at_the_path_limit_is_used_but_never_exported_over_it() {
    use fabric_core::wire;
    let mut config = config_with(&["a", "b"]);
    config.limits.max_path_length = 4;
    let limits = config.decode_limits();
    let mut e = fabric_engine::Engine::new(config, t(0)).unwrap();
    for n in ["a", "b"] {
        e.neighbor_up(t(0), &NodeId::new(n));
    }
    e.drain_effects(t(0));
    // Three hops: advertised with four, which decodes at the limit.
    let fx = send(&mut e, t(1), "a", ann("a", "short", &["a", "p", "q"], 1, 1));
    let sent: Vec<&Message> = fx
        .iter()
        .filter_map(|f| match f {
            Effect::Send { message, .. } => Some(&**message),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 1, "{fx:?}");
    let decoded = wire::decode(&wire::encode(sent[0]), &limits).expect("a neighbor with the same limits accepts it");
    assert!(matches!(decoded, Message::Announcement(a) if a.path.len() == 4));
    // Four hops: accepted and used, not advertised (five would be refused).
    let fx = send(&mut e, t(2), "a", ann("a", "long", &["a", "p", "q", "r"], 1, 1));
    assert_eq!(next_hop(&e, "long").as_deref(), Some("a"));
    assert!(!fx.iter().any(|f| matches!(f, Effect::Send { .. })), "nothing sent: {fx:?}");
    assert_eq!(e.stats().export_refusals_total.get("path_limit"), Some(&1));
    let trace = e.explain("long", t(3)).unwrap();
    assert!(trace.not_exported.as_deref().is_some_and(|why| why.contains("maxPathLength 4")), "{trace:?}");
    assert!(e.explain("short", t(3)).unwrap().not_exported.is_none());
}

/// What a node exports, a neighbor must be able to read: an announcement
/// whose frame would be longer than `maxMessageBytes` is not sent (it would
/// end the session at either end, at every reconnect); the route is used,
/// the refusal counted and explained, and a neighbor that had an earlier,
/// smaller version of it gets a withdrawal.
#[test]
fn a_route_whose_announcement_would_not_fit_a_frame_is_used_but_not_exported() {
    use fabric_core::wire;
    let mut config = config_with(&["a", "b"]);
    config.limits.max_message_bytes = 256;
    let mut e = fabric_engine::Engine::new(config, t(0)).unwrap();
    for n in ["a", "b"] {
        e.neighbor_up(t(0), &NodeId::new(n));
    }
    e.drain_effects(t(0));
    let long = "d".repeat(240);
    let fx = send(&mut e, t(1), "a", ann("a", &long, &["a"], 1, 1));
    assert_eq!(next_hop(&e, &long).as_deref(), Some("a"));
    assert!(sends_to(&fx).is_empty(), "nothing sent: {fx:?}");
    assert_eq!(e.stats().export_refusals_total.get("message_limit"), Some(&1));
    let trace = e.explain(&long, t(2)).unwrap();
    assert!(trace.not_exported.as_deref().is_some_and(|why| why.contains("maxMessageBytes 256")), "{trace:?}");

    // Small enough: sent, and within the limit on the wire.
    let fx = send(&mut e, t(3), "a", ann("a", "svc", &["a"], 1, 2));
    assert_eq!(sends_to(&fx), vec![("b".into(), "announce")]);
    let Some(Effect::Send { message, .. }) = fx.iter().find(|f| matches!(f, Effect::Send { .. })) else {
        unreachable!()
    };
    assert!(wire::encode(message).len() <= 256);
    assert!(e.explain("svc", t(3)).unwrap().not_exported.is_none());
    // Grown past the limit (tags): withdrawn from the neighbor that had it.
    let tags: Vec<String> = (0..6).map(|i| format!("{i}{}", "t".repeat(40))).collect();
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    let fx = send(&mut e, t(4), "a", with_tags(ann("a", "svc", &["a"], 1, 3), &tags));
    assert_eq!(sends_to(&fx), vec![("b".into(), "withdraw")]);
    assert_eq!(next_hop(&e, "svc").as_deref(), Some("a"));
    assert_eq!(e.stats().export_refusals_total.get("message_limit"), Some(&2));
}

/// The tag-set interner holds what the table uses: a neighbor announcing
/// ever new tag sets (a new set with each re-announcement) leaves one set
/// per stored route, and a set goes when the last route using it goes.
#[test]
fn tag_sets_no_route_uses_are_freed_so_distinct_sets_cannot_grow_the_engine() {
    let mut e = engine(&["a", "b"]);
    let held_at_start = e.tag_sets_held();
    for i in 0..5_000u64 {
        let dest = format!("x{}", i % 10);
        send(&mut e, t(i), "a", with_tags(ann("a", &dest, &["a", "o"], 1, i + 1), &[&format!("t{i}"), "shared"]));
        assert!(e.tag_sets_held() <= held_at_start + 10, "{} sets after {i}", e.tag_sets_held());
    }
    e.verify_invariants().unwrap();
    // b shares one of a's sets: withdrawing a's route keeps it, b's keeps it.
    send(&mut e, t(6_000), "b", with_tags(ann("b", "x9", &["b", "o"], 1, 1), &["shared", "t4999"]));
    assert_eq!(e.tag_sets_held(), held_at_start + 10);
    for d in 0..10 {
        send(&mut e, t(6_001), "a", wd("a", &format!("x{d}"), 10_000));
    }
    assert_eq!(e.tag_sets_held(), held_at_start + 1, "only b's set is left");
    assert_eq!(e.best_route("x9").unwrap().tags.iter().map(|t| t.as_str()).collect::<Vec<_>>(), ["shared", "t4999"]);
    send(&mut e, t(6_002), "b", wd("b", "x9", 2));
    assert_eq!(e.tag_sets_held(), held_at_start);
    e.verify_invariants().unwrap();
}

/// What a node sends carries its issue time (protocol v2), signed; with
/// `security.signV1` it carries none, for neighbors that verify v1 only.
#[test]
fn announcements_and_withdrawals_carry_the_time_they_were_made() {
    for sign_v1 in [false, true] {
        let mut config = config_with(&["a", "b"]);
        config.security.sign_v1 = sign_v1;
        let mut e = fabric_engine::Engine::new(config, t(0)).unwrap();
        e.set_signer(Some(identity("me", "k1")));
        for n in ["a", "b"] {
            e.neighbor_up(t(0), &NodeId::new(n));
        }
        e.drain_effects(t(0));
        let sent = |fx: Vec<Effect>| -> Vec<(Option<u64>, bool)> {
            fx.iter()
                .filter_map(|f| match f {
                    Effect::Send { message, .. } => match &**message {
                        Message::Announcement(a) => Some((a.issued_at_ms, a.signature.is_some())),
                        Message::Withdrawal(w) => Some((w.issued_at_ms, w.signature.is_some())),
                        _ => None,
                    },
                    _ => None,
                })
                .collect()
        };
        let issued = |at: u64| if sign_v1 { None } else { Some(at) };
        assert_eq!(sent(send(&mut e, t(5_000), "a", ann("a", "x", &["a"], 1, 1))), [(issued(5_000), true)]);
        assert_eq!(sent(send(&mut e, t(7_000), "a", wd("a", "x", 2))), [(issued(7_000), true)]);
    }
}

/// A rolling upgrade, as docs/protocol.md describes it: a sidecar that
/// predates v2 skips the issue time on decoding, so the bytes it checks are
/// v1's and a v2 signature fails there; with `security.signV1` upgraded
/// sidecars send what it verifies, and they accept (and count) v1.
#[test]
fn during_an_upgrade_v2_breaks_old_verifiers_and_sign_v1_does_not() {
    use fabric_core::wire;
    let a_key = identity("a", "k1");
    let mut config = config_with(&["a"]);
    config.security.require_signatures = true;
    config.security.trusted_keys = vec![trusted("a", &a_key)].into();
    let start = 1_800_000_000_000;
    let mut v2 = ann("a", "x", &["a"], 1, 1);
    v2.issued_at_ms = Some(start);
    a_key.sign_announcement(&mut v2);
    // What an old decoder keeps of it: everything but field 12.
    let limits = config.decode_limits();
    let Message::Announcement(mut seen_by_old) =
        wire::decode(&wire::encode(&Message::Announcement(v2.clone())), &limits).unwrap()
    else {
        unreachable!()
    };
    seen_by_old.issued_at_ms = None;
    let mut e = fabric_engine::Engine::new(config.clone(), t(start)).unwrap();
    assert_eq!(rejected_reasons(&send(&mut e, t(start), "a", seen_by_old)), vec![RejectReason::BadSignature]);
    // An upgraded node takes the v2 message, and a v1 one (signV1), counted.
    assert!(rejected_reasons(&send(&mut e, t(start), "a", v2)).is_empty());
    let mut v1 = ann("a", "y", &["a"], 1, 1);
    a_key.sign_announcement(&mut v1);
    assert!(rejected_reasons(&send(&mut e, t(start), "a", v1)).is_empty());
    assert_eq!(e.stats().v1_messages_accepted_total, 1);
}
