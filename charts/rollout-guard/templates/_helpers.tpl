{{/*
Names and labels shared by the templates.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "rollout-guard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources (and of the leader-election Lease): fullnameOverride,
else "<release>-<name>", or the release name alone when it already contains the name.
Truncated to 63 characters, the limit of a label value and a DNS label.
*/}}
{{- define "rollout-guard.fullname" -}}
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

{{/* "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "rollout-guard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every resource. */}}
{{- define "rollout-guard.labels" -}}
helm.sh/chart: {{ include "rollout-guard.chart" . }}
{{ include "rollout-guard.selectorLabels" . }}
app.kubernetes.io/version: {{ include "rollout-guard.version" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The labels that select the controller's pods (stable across upgrades). */}}
{{- define "rollout-guard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rollout-guard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the controller runs as. */}}
{{- define "rollout-guard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rollout-guard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The version that runs: the image tag, else the chart's appVersion. */}}
{{- define "rollout-guard.version" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The container image reference. */}}
{{- define "rollout-guard.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "rollout-guard.version" .) }}
{{- end }}

{{/*
The size limit of the records' emptyDir: records.sizeLimit, or with `auto` the most the
rotated records take, maxBytes × (keep + 1), plus a quarter for headroom, in MiB rounded up;
empty for no limit.
*/}}
{{- define "rollout-guard.recordsSizeLimit" -}}
{{- $records := .Values.records -}}
{{- if eq (toString $records.sizeLimit) "auto" -}}
{{- $bytes := div (mul (int64 $records.maxBytes) (add1 (int64 $records.keep)) 5) 4 -}}
{{- printf "%dMi" (div (add $bytes 1048575) 1048576) -}}
{{- else -}}
{{- $records.sizeLimit -}}
{{- end -}}
{{- end }}

{{/*
Refuses values that would give a controller that cannot start or could act twice. Included by
the Deployment template.
*/}}
{{- define "rollout-guard.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled: every replica would act" }}
{{- end }}
{{- if and (not .Values.rules.defaults) (not .Values.rules.phpLogs) (empty .Values.rules.extra) }}
{{- fail "rules.defaults and rules.phpLogs are false and rules.extra is empty: the controller would have no rules" }}
{{- end }}
{{- if and .Values.rules.phpLogs (not .Values.rbac.podLogs) }}
{{- fail "rules.phpLogs needs rbac.podLogs: its rules read the pods' logs (get on pods/log)" }}
{{- end }}
{{- range $file, $_ := .Values.rules.extra }}
{{- if not (or (hasSuffix ".yaml" $file) (hasSuffix ".yml" $file)) }}
{{- fail (printf "rules.extra.%s: rule file names must end in .yaml or .yml (others are not loaded)" $file) }}
{{- end }}
{{- if and $.Values.rules.defaults (eq $file "default.yaml") }}
{{- fail "rules.extra.default.yaml: the name of the bundled rules; choose another name or set rules.defaults to false" }}
{{- end }}
{{- if and $.Values.rules.phpLogs (eq $file "php-logs.yaml") }}
{{- fail "rules.extra.php-logs.yaml: the name of the bundled log rules; choose another name or set rules.phpLogs to false" }}
{{- end }}
{{- end }}
{{- if and .Values.records.enabled (or (not (isAbs .Values.records.path)) (eq (dir .Values.records.path) "/")) }}
{{- fail "records.path must be a file in a folder below / (the folder becomes a writable emptyDir)" }}
{{- end }}
{{- if and .Values.records.enabled (lt (int64 .Values.records.maxBytes) 16384) }}
{{- fail "records.maxBytes must be a number of bytes, at least 16384" }}
{{- end }}
{{- if and .Values.records.enabled (or (lt (int64 .Values.records.keep) 1) (gt (int64 .Values.records.keep) 100)) }}
{{- fail "records.keep must be a number of rotated files from 1 to 100" }}
{{- end }}
{{- if not .Values.prometheus.url }}
{{- fail "prometheus.url is required" }}
{{- end }}
{{- end }}

{{/*
A webhook's name, which names its URL's file: lowercase letters, digits and '-'.
*/}}
{{- define "rollout-guard.webhookName" -}}
{{- if not (regexMatch "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$" (.name | default "")) -}}
{{- fail (printf "notify.webhooks[].name %q: lowercase letters, digits and '-' (it names the URL's file)" (.name | default "")) -}}
{{- end -}}
{{- .name -}}
{{- end -}}
