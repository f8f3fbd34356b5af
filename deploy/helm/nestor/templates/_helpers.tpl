{{/* The chart's name. */}}
{{- define "nestor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name, at most 63 characters. */}}
{{- define "nestor.fullname" -}}
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

{{- define "nestor.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "nestor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "nestor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nestor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "nestor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "nestor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
nestor.yaml: the user's config with what the pod needs laid over it.
Replicas on anything but DynamoDB are refused here, once for every template.
*/}}
{{- define "nestor.config" -}}
{{- $config := deepCopy (default dict .Values.config) }}
{{- $storage := default dict (get $config "storage") }}
{{- $type := default "sqlite" (get $storage "type") }}
{{- if and (gt (int .Values.replicaCount) 1) (ne $type "dynamodb") }}
{{- fail (printf "replicaCount %d needs config.storage.type: dynamodb (storage %q keeps one store per replica)" (int .Values.replicaCount) $type) }}
{{- end }}
{{- $server := default dict (get $config "server") }}
{{- $_ := set $server "listen" (printf "0.0.0.0:%d" (int .Values.service.port)) }}
{{- $_ := set $config "server" $server }}
{{- if eq $type "sqlite" }}
{{- $sqlite := default dict (get $storage "sqlite") }}
{{- if not (get $sqlite "path") }}
{{- $_ := set $sqlite "path" "/var/lib/nestor/nestor.db" }}
{{- end }}
{{- $_ := set $storage "sqlite" $sqlite }}
{{- end }}
{{- $_ := set $storage "type" $type }}
{{- $_ := set $config "storage" $storage }}
{{- $gitops := default dict (get $config "gitops") }}
{{- if not (get $gitops "repo") }}
{{- $_ := set $gitops "repo" "/var/lib/nestor/gitops" }}
{{- end }}
{{- $_ := set $config "gitops" $gitops }}
{{- $engines := default dict (get $config "engines") }}
{{- if not (get $engines "plugins_dir") }}
{{- $_ := set $engines "plugins_dir" "/var/lib/nestor/plugins" }}
{{- end }}
{{- $_ := set $config "engines" $engines }}
{{- if .Values.tokens }}
{{- $auth := default dict (get $config "auth") }}
{{- $entries := default list (get $auth "tokens") }}
{{- range .Values.tokens }}
{{- $entries = append $entries (dict "name" .name "sha256" (sha256sum .token) "roles" (default list .roles)) }}
{{- end }}
{{- $_ := set $auth "tokens" $entries }}
{{- $_ := set $config "auth" $auth }}
{{- end }}
{{- toYaml $config }}
{{- end }}
