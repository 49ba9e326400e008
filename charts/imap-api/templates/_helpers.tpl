{{/* Names, labels and the shared pieces of every imap-api pod. */}}

{{- define "imap-api.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "imap-api.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "imap-api.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels; call with (dict "ctx" $ "component" "api") */}}
{{- define "imap-api.selectorLabels" -}}
app.kubernetes.io/name: {{ include "imap-api.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "imap-api.labels" -}}
helm.sh/chart: {{ include "imap-api.chart" .ctx }}
{{ include "imap-api.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: imap-api
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "imap-api.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "imap-api.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* image reference; (dict "ctx" $ "image" .Values.api.image) merged over the global image */}}
{{- define "imap-api.image" -}}
{{- $img := merge (deepCopy (default dict .image)) .ctx.Values.image -}}
{{- printf "%s:%s" $img.repository (default .ctx.Chart.AppVersion $img.tag) -}}
{{- end -}}

{{- define "imap-api.pullPolicy" -}}
{{- $img := merge (deepCopy (default dict .image)) .ctx.Values.image -}}
{{- $img.pullPolicy | default "IfNotPresent" -}}
{{- end -}}

{{/* Secret names: the app Secret (rendered unless secrets.existingSecret) */}}
{{- define "imap-api.secretName" -}}
{{- default (include "imap-api.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* The Redis URL lives in its own Secret: <fullname>-redis (rendered from the bundled Valkey's
address or externalRedis.url) or externalRedis.existingSecret. */}}
{{- define "imap-api.redisUrlSecretName" -}}
{{- if and (not .Values.redis.enabled) .Values.externalRedis.existingSecret -}}
{{- .Values.externalRedis.existingSecret -}}
{{- else -}}
{{- printf "%s-redis" (include "imap-api.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "imap-api.redisUrlSecretKey" -}}
{{- if and (not .Values.redis.enabled) .Values.externalRedis.existingSecret -}}
{{- .Values.externalRedis.existingSecretKey -}}
{{- else -}}
redis-url
{{- end -}}
{{- end -}}

{{/* The URL of the bundled Valkey (password part only when set) */}}
{{- define "imap-api.bundledRedisUrl" -}}
{{- $auth := "" -}}
{{- if .Values.redis.auth.password -}}
{{- $auth = printf ":%s@" (.Values.redis.auth.password | urlquery) -}}
{{- end -}}
{{- printf "redis://%s%s-redis:6379/%d" $auth (include "imap-api.fullname" .) (int .Values.redis.database) -}}
{{- end -}}

{{/* TOML from values.config: [table] then key = value; empty values are left out */}}
{{- define "imap-api.configToml" -}}
{{- range $table, $options := .Values.config }}
[{{ $table }}]
{{- range $key, $value := $options }}
{{- if not (or (eq (toString $value) "") (kindIs "invalid" $value)) }}
{{- if kindIs "string" $value }}
{{ $key }} = {{ $value | toJson }}
{{- else if kindIs "bool" $value }}
{{ $key }} = {{ $value }}
{{- else if and (kindIs "float64" $value) (ne $value (float64 (int64 $value))) }}
{{ $key }} = {{ $value }}
{{- else }}
{{ $key }} = {{ int64 $value }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Environment shared by every imap-api container: Redis URL, secrets, the config file */}}
{{- define "imap-api.env" -}}
- name: IMAPAPI_CONFIG
  value: /etc/imap-api/config.toml
- name: IMAPAPI_DOTENV
  value: "0"
- name: STATE_DIR
  value: /var/lib/imap-api
- name: TMPDIR
  value: /tmp
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "imap-api.redisUrlSecretName" . }}
      key: {{ include "imap-api.redisUrlSecretKey" . }}
- name: WEBHOOK_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "imap-api.secretName" . }}
      key: webhook-secret
      optional: true
{{- if not .Values.secrets.keyFile.enabled }}
# every process must hold the same key: a missing one would make each pod invent its own
- name: ENCRYPTION_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "imap-api.secretName" . }}
      key: encryption-key
{{- end }}
{{- if .Values.secrets.keyFile.enabled }}
- name: KEY_FILE
  value: /etc/imap-api/keys/encryption.key
{{- end }}
{{- end -}}

{{- define "imap-api.volumeMounts" -}}
- name: config
  mountPath: /etc/imap-api/config.toml
  subPath: config.toml
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: state
  mountPath: /var/lib/imap-api
{{- if .Values.secrets.keyFile.enabled }}
- name: keyfile
  mountPath: /etc/imap-api/keys
  readOnly: true
{{- end }}
{{- end -}}

{{- define "imap-api.volumes" -}}
- name: config
  configMap:
    name: {{ include "imap-api.fullname" . }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
- name: state
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- if .Values.secrets.keyFile.enabled }}
- name: keyfile
  secret:
    secretName: {{ include "imap-api.secretName" . }}
    defaultMode: 0400
    items:
      - key: encryption-key-file
        path: encryption.key
{{- end }}
{{- end -}}

{{/* Pod-level spec shared by all components; (dict "ctx" $ "c" .Values.api) */}}
{{- define "imap-api.podCommon" -}}
serviceAccountName: {{ include "imap-api.serviceAccountName" .ctx }}
automountServiceAccountToken: {{ .ctx.Values.serviceAccount.automount }}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml (merge (deepCopy (default dict .c.podSecurityContext)) .ctx.Values.podSecurityContext) | nindent 2 }}
{{- with .c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "imap-api.containerSecurityContext" -}}
{{- toYaml (merge (deepCopy (default dict .c.securityContext)) .ctx.Values.securityContext) -}}
{{- end -}}

{{/* Probes: defaults merged with the component's probes block (same keys: liveness, readiness, startup) */}}
{{- define "imap-api.probes" -}}
{{- $probes := mergeOverwrite (deepCopy .defaults) (default dict .c.probes) -}}
{{- range $kind := list "startup" "readiness" "liveness" }}
{{- with (get $probes $kind) }}
{{ $kind }}Probe:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "imap-api.podAnnotations" -}}
checksum/config: {{ include (print .ctx.Template.BasePath "/configmap.yaml") .ctx | sha256sum }}
{{- if not .ctx.Values.secrets.existingSecret }}
checksum/secret: {{ include (print .ctx.Template.BasePath "/secret.yaml") .ctx | sha256sum }}
{{- end }}
{{- with .c.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}
