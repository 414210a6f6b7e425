{{/*
Chart name, truncated to the 63 characters of a DNS label.
*/}}
{{- define "fabric-routing.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: <release>-<chart>, or the release name when it contains the chart
name, or fullnameOverride. Every resource name starts with it.
*/}}
{{- define "fabric-routing.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "fabric-routing.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every resource.
*/}}
{{- define "fabric-routing.labels" -}}
helm.sh/chart: {{ include "fabric-routing.chart" . }}
{{ include "fabric-routing.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fabric-routing
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels of the operator pods (also the Service and PDB selectors).
*/}}
{{- define "fabric-routing.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fabric-routing.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "fabric-routing.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fabric-routing.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}: the digest wins, the tag
defaults to the chart's appVersion. Call with (dict "image" .Values.x.image "root" $).
*/}}
{{- define "fabric-routing.image" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{- define "fabric-routing.operatorImage" -}}
{{- include "fabric-routing.image" (dict "image" .Values.operator.image "root" .) }}
{{- end }}

{{/*
The sidecar image the injection webhook injects.
*/}}
{{- define "fabric-routing.sidecarImage" -}}
{{- include "fabric-routing.image" (dict "image" .Values.sidecar.image "root" .) }}
{{- end }}

{{/*
The Secret with the serving certificate (tls.crt, tls.key, ca.crt).
*/}}
{{- define "fabric-routing.tlsSecretName" -}}
{{- if eq .Values.tls.mode "secret" }}
{{- required "tls.secretName is required with tls.mode=secret" .Values.tls.secretName }}
{{- else }}
{{- default (printf "%s-tls" (include "fabric-routing.fullname" .)) .Values.tls.secretName }}
{{- end }}
{{- end }}

{{/*
DNS names of the operator Service, in the serving certificate. The sidecars
dial https://<fullname>.<namespace>.svc:<grpcPort>.
*/}}
{{- define "fabric-routing.dnsNames" -}}
{{- $svc := include "fabric-routing.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) | toJson }}
{{- end }}

{{/*
Whether leader election is on; fails on a combination that would run two
active operators.
*/}}
{{- define "fabric-routing.leaderElection" -}}
{{- if .Values.operator.leaderElection.enabled }}true
{{- else if gt (int .Values.operator.replicas) 1 }}
{{- fail "operator.leaderElection.enabled=false needs operator.replicas: 1 (two operators without leader election would both push configs and write status)" }}
{{- else }}false
{{- end }}
{{- end }}

{{/*
Cross-field checks the JSON schema cannot express; included by the Deployment.
*/}}
{{- define "fabric-routing.validate" -}}
{{- $_ := include "fabric-routing.leaderElection" . }}
{{- if and (eq .Values.tls.mode "secret") (not .Values.tls.secretName) }}
{{- fail "tls.mode=secret needs tls.secretName (an existing kubernetes.io/tls Secret in the release namespace)" }}
{{- end }}
{{- if and .Values.rbac.secrets.clusterWide .Values.rbac.secrets.namespaces }}
{{- fail "rbac.secrets.clusterWide and rbac.secrets.namespaces are exclusive: choose one" }}
{{- end }}
{{- end }}
