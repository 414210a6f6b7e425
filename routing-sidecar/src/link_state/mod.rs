//! Link-state mode (being written).
