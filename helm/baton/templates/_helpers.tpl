{{/* Names, labels and the few values computed from several others. */}}

{{- define "baton.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every resource name; 63 characters at most, less the longest suffix ("-orchestrator-headless"). */}}
{{- define "baton.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "baton.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource; call with (dict "ctx" $ "component" "orchestrator"). */}}
{{- define "baton.labels" -}}
helm.sh/chart: {{ include "baton.chart" .ctx }}
{{ include "baton.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: baton
{{- end }}

{{/* The labels a component's selectors match; call as baton.labels. */}}
{{- define "baton.selectorLabels" -}}
app.kubernetes.io/name: {{ include "baton.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "baton.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "baton.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "baton.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "baton.orchestrator.fullname" -}}
{{- printf "%s-orchestrator" (include "baton.fullname" .) }}
{{- end }}

{{/* The headless Service: one DNS record per ready replica, so Envoy balances over pods, not over a ClusterIP. */}}
{{- define "baton.orchestrator.headless" -}}
{{- printf "%s-orchestrator-headless" (include "baton.fullname" .) }}
{{- end }}

{{- define "baton.envoy.fullname" -}}
{{- printf "%s-envoy" (include "baton.fullname" .) }}
{{- end }}

{{- define "baton.agents.fullname" -}}
{{- printf "%s-agents" (include "baton.fullname" .) }}
{{- end }}

{{/* For files/envoy.yaml: HOST the orchestrator replicas resolve under (STRICT_DNS), and their PORT. */}}
{{- define "baton.envoy.upstreamHost" -}}
{{- printf "%s.%s.svc" (include "baton.orchestrator.headless" .) .Release.Namespace }}
{{- end }}

{{/*
The agents' endpoints file (the YAML `baton serve --agents FILE` reads: agent → HOST:PORT or a
list), or "" when there is none: agentEndpoints, with `default` pointing at the chart's
reference agents when they are enabled and no default is given.
*/}}
{{- define "baton.agentEndpoints" -}}
{{- $endpoints := deepCopy .Values.agentEndpoints }}
{{- if and .Values.agents.enabled (not (hasKey $endpoints "default")) }}
{{- $_ := set $endpoints "default" (printf "%s.%s.svc:%d" (include "baton.agents.fullname" .) .Release.Namespace (int .Values.agents.port)) }}
{{- end }}
{{- if $endpoints }}
{{- toYaml $endpoints }}
{{- end }}
{{- end }}

{{/*
Seconds Kubernetes waits between SIGTERM and SIGKILL: drain + grace + margin, rounded up, or
the value given, which must exceed drain + grace (else the orchestrator is killed mid-drain).
*/}}
{{- define "baton.terminationGracePeriodSeconds" -}}
{{- $o := .Values.orchestrator }}
{{- $needed := addf (default 0 $o.drain) $o.grace }}
{{- if kindIs "invalid" $o.terminationGracePeriodSeconds }}
{{- ceil (addf $needed $o.terminationGraceMarginSeconds) | int }}
{{- else if le (float64 $o.terminationGracePeriodSeconds) $needed }}
{{- fail (printf "orchestrator.terminationGracePeriodSeconds (%v) must exceed orchestrator.drain + orchestrator.grace (%v seconds), or Kubernetes kills the orchestrator before it has drained" $o.terminationGracePeriodSeconds $needed) }}
{{- else }}
{{- $o.terminationGracePeriodSeconds | int }}
{{- end }}
{{- end }}

{{/* TLS (README "TLS"): a baton container's certificate, key and CA, from its Secret mounted at tls.mountPath. */}}
{{- define "baton.tlsArgs" -}}
- --tls-cert
- {{ printf "%s/tls.crt" .Values.tls.mountPath }}
- --tls-key
- {{ printf "%s/tls.key" .Values.tls.mountPath }}
- --tls-ca
- {{ printf "%s/ca.crt" .Values.tls.mountPath }}
{{- end }}

{{/* The port the orchestrator's probes ask: with TLS, the plaintext health-only port (kubelet probes cannot speak TLS). */}}
{{- define "baton.orchestrator.probePort" -}}
{{- ternary .Values.orchestrator.healthPort .Values.orchestrator.port .Values.tls.enabled | int }}
{{- end }}

{{/* The client certificate names the agents serve: tls.agents.allowClients, else the orchestrator's headless Service name. */}}
{{- define "baton.agents.allowClients" -}}
{{- toYaml (default (list (include "baton.envoy.upstreamHost" .)) .Values.tls.agents.allowClients) }}
{{- end }}

{{/* The least number of orchestrator replicas: the HPA's minimum, or the fixed count. */}}
{{- define "baton.orchestrator.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.minReplicas | int }}{{ else }}{{ .Values.orchestrator.replicas | int }}{{ end }}
{{- end }}
