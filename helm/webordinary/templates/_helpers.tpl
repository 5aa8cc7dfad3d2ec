{{/*
Chart name, truncated to fit DNS-1123 labels.
*/}}
{{- define "webordinary.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name; the release name is used as is when it already contains the chart name.
Components append "-operator" / "-hermes", so this stays short enough for them.
*/}}
{{- define "webordinary.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "webordinary.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: stable for the life of a release (never add version here).
Call with (dict "ctx" $ "component" "operator").
*/}}
{{- define "webordinary.selectorLabels" -}}
app.kubernetes.io/name: {{ include "webordinary.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Standard labels on every object. Call with (dict "ctx" $ "component" "operator").
*/}}
{{- define "webordinary.labels" -}}
helm.sh/chart: {{ include "webordinary.chart" .ctx }}
{{ include "webordinary.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: webordinary
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "webordinary.operator.fullname" -}}
{{- printf "%s-operator" (include "webordinary.fullname" .) }}
{{- end }}

{{- define "webordinary.hermes.fullname" -}}
{{- printf "%s-hermes" (include "webordinary.fullname" .) }}
{{- end }}

{{- define "webordinary.gateway.fullname" -}}
{{- printf "%s-gateway" (include "webordinary.fullname" .) }}
{{- end }}

{{- define "webordinary.gateway.serviceAccountName" -}}
{{- default (include "webordinary.gateway.fullname" .) .Values.gateway.serviceAccount.name }}
{{- end }}

{{- define "webordinary.operator.serviceAccountName" -}}
{{- default (include "webordinary.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- end }}

{{- define "webordinary.hermes.serviceAccountName" -}}
{{- default (include "webordinary.hermes.fullname" .) .Values.hermes.serviceAccount.name }}
{{- end }}

{{/*
The namespace where EditEnvironments live: Hermes creates them there, the operator watches it.
*/}}
{{- define "webordinary.environmentsNamespace" -}}
{{- default .Release.Namespace .Values.environments.namespace }}
{{- end }}

{{/*
Image reference. Call with (dict "ctx" $ "image" .Values.operator.image).
A digest wins over a tag; the tag defaults to the chart's appVersion.
*/}}
{{- define "webordinary.image" -}}
{{- $registry := .image.registry | default .ctx.Values.image.registry -}}
{{- $repo := .image.repository -}}
{{- if $registry }}{{ $repo = printf "%s/%s" $registry $repo }}{{ end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (.image.tag | default .ctx.Values.image.tag | default .ctx.Chart.AppVersion) -}}
{{- end -}}
{{- end }}

{{/*
Restricted pod security context (Pod Security Standard "restricted"), uid from values.
*/}}
{{- define "webordinary.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "webordinary.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ .Values.securityContext.readOnlyRootFilesystem }}
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}
