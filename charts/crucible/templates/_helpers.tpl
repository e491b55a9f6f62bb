{{/*
crucible.name: the chart name, or nameOverride; 63 characters at most (DNS label).
*/}}
{{- define "crucible.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
crucible.fullname: prefix of every resource name: fullnameOverride, else release name plus
chart name (once, if the release name already contains it). Components append suffixes up to
"-redis-headless" (15), and a StatefulSet's name must stay within 52 characters (its pods get a
controller-revision-hash label of name plus 11), so the prefix is cut at 46 characters.
*/}}
{{- define "crucible.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 46 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 46 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 46 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
crucible.chart: chart name and version for the helm.sh/chart label.
*/}}
{{- define "crucible.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
crucible.selectorLabels: the immutable labels that select a component's pods.
Takes a dict: context (the root) and component (dispatcher, redis, ...).
*/}}
{{- define "crucible.selectorLabels" -}}
{{- if not .component }}{{ fail "crucible.selectorLabels: component is required" }}{{ end -}}
app.kubernetes.io/name: {{ include "crucible.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
crucible.labels: the recommended labels of every object plus commonLabels.
Takes a dict: context (the root) and component.
*/}}
{{- define "crucible.labels" -}}
{{ include "crucible.selectorLabels" . }}
helm.sh/chart: {{ include "crucible.chart" .context }}
app.kubernetes.io/version: {{ .context.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .context.Release.Service }}
app.kubernetes.io/part-of: crucible
{{- with .context.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
crucible.image: an image reference "repository[:tag][@digest]" from an image values block.
Takes a dict: image (the block) and default tag (may be empty).
*/}}
{{- define "crucible.image" -}}
{{- if not .image.repository }}{{ fail "crucible.image: image.repository is required" }}{{ end }}
{{- $tag := default .defaultTag .image.tag | toString }}
{{- $ref := .image.repository }}
{{- if $tag }}{{ $ref = printf "%s:%s" $ref $tag }}{{ end }}
{{- if .image.digest }}{{ $ref = printf "%s@%s" $ref .image.digest }}{{ end }}
{{- $ref }}
{{- end }}

{{/*
crucible.platformImage: the platform image (dispatcher, init container, sidecar, helm test).
*/}}
{{- define "crucible.platformImage" -}}
{{- include "crucible.image" (dict "image" .Values.image "defaultTag" .Chart.AppVersion) }}
{{- end }}

{{/*
crucible.dispatcher.fullname: name of the dispatcher's Deployment, Service, Role, ...
*/}}
{{- define "crucible.dispatcher.fullname" -}}
{{- printf "%s-dispatcher" (include "crucible.fullname" .) }}
{{- end }}

{{/*
crucible.dispatcher.serviceAccountName: the dispatcher's account (created, named, or default).
*/}}
{{- define "crucible.dispatcher.serviceAccountName" -}}
{{- if .Values.dispatcher.serviceAccount.create }}
{{- default (include "crucible.dispatcher.fullname" .) .Values.dispatcher.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.dispatcher.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
crucible.evaluation.serviceAccountName: the token-less account of evaluation pods.
*/}}
{{- define "crucible.evaluation.serviceAccountName" -}}
{{- if .Values.evaluation.serviceAccount.create }}
{{- default (printf "%s-evaluation" (include "crucible.fullname" .)) .Values.evaluation.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.evaluation.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
crucible.evaluation.podLabels: labels the dispatcher puts on every evaluation Job and pod
(dispatcher/kube/names.py: managed-by crucible, crucible.dev/instance = the release name); the
NetworkPolicies select evaluation pods by them. The chart hands the instance to the dispatcher.
*/}}
{{- define "crucible.evaluation.podLabels" -}}
app.kubernetes.io/managed-by: crucible
crucible.dev/instance: {{ .Release.Name }}
{{- end }}

{{/*
crucible.redis.fullname: name of the built-in Redis's StatefulSet, Service and config.
*/}}
{{- define "crucible.redis.fullname" -}}
{{- printf "%s-redis" (include "crucible.fullname" .) }}
{{- end }}

{{/*
crucible.redis.host: the Redis host the dispatcher and the sidecars connect to.
*/}}
{{- define "crucible.redis.host" -}}
{{- if .Values.redis.enabled }}
{{- printf "%s.%s.svc" (include "crucible.redis.fullname" .) .Release.Namespace }}
{{- else }}
{{- required "externalRedis.host is required when redis.enabled is false" .Values.externalRedis.host }}
{{- end }}
{{- end }}

{{/*
crucible.redis.port: the port of the built-in or external Redis.
*/}}
{{- define "crucible.redis.port" -}}
{{- if .Values.redis.enabled }}{{ .Values.redis.port }}{{ else }}{{ .Values.externalRedis.port }}{{ end }}
{{- end }}

{{/*
crucible.redis.url: a Redis URL for one user. Takes a dict: context and user ("dispatcher" or
"sidecar"). The password is never part of it: the dispatcher's URL gets it through the
$(REDIS_PASSWORD) variable expansion of Kubernetes, the sidecar reads it from a file.
*/}}
{{- define "crucible.redis.url" -}}
{{- $ctx := .context }}
{{- $user := "" }}
{{- if $ctx.Values.redis.enabled }}
{{- $user = .user }}
{{- else if eq .user "dispatcher" }}
{{- $user = $ctx.Values.externalRedis.dispatcherUsername }}
{{- else if eq .user "sidecar" }}
{{- $user = $ctx.Values.externalRedis.sidecarUsername }}
{{- else }}
{{- fail (printf "crucible.redis.url: unknown user %q" .user) }}
{{- end }}
{{- $auth := "" }}
{{- if and $user .withPassword }}
{{- $auth = printf "%s:$(REDIS_PASSWORD)@" $user }}
{{- else if .withPassword }}
{{- $auth = ":$(REDIS_PASSWORD)@" }}
{{- else if $user }}
{{- $auth = printf "%s@" $user }}
{{- end }}
{{- printf "redis://%s%s:%s/0" $auth (include "crucible.redis.host" $ctx) (include "crucible.redis.port" $ctx) }}
{{- end }}

{{/*
crucible.redis.secretName: the Secret holding the dispatcher's Redis password (and, for the
built-in Redis, users.acl).
*/}}
{{- define "crucible.redis.secretName" -}}
{{- if .Values.redis.enabled }}
{{- default (printf "%s-redis" (include "crucible.fullname" .)) .Values.redis.auth.existingSecret }}
{{- else }}
{{- required "externalRedis.existingSecret is required when redis.enabled is false" .Values.externalRedis.existingSecret }}
{{- end }}
{{- end }}

{{/*
crucible.redis.dispatcherPasswordKey: key of the dispatcher's password in that Secret.
*/}}
{{- define "crucible.redis.dispatcherPasswordKey" -}}
{{- if .Values.redis.enabled }}dispatcher-password{{ else }}{{ .Values.externalRedis.dispatcherPasswordKey }}{{ end }}
{{- end }}

{{/*
crucible.sidecar.secretName: the Secret holding the sidecar's password.
*/}}
{{- define "crucible.sidecar.secretName" -}}
{{- if and .Values.redis.enabled (not .Values.redis.auth.existingSecret) }}
{{- printf "%s-sidecar-redis" (include "crucible.fullname" .) }}
{{- else }}
{{- include "crucible.redis.secretName" . }}
{{- end }}
{{- end }}

{{/*
crucible.sidecar.secretKey: key of the sidecar's password in that Secret.
*/}}
{{- define "crucible.sidecar.secretKey" -}}
{{- if not .Values.redis.enabled }}
{{- .Values.externalRedis.sidecarPasswordKey }}
{{- else if .Values.redis.auth.existingSecret }}sidecar-password
{{- else }}password
{{- end }}
{{- end }}

{{/*
crucible.generated: the generated secret values as JSON, computed once per render and shared
by every template that needs them (the ACL file must hash the same passwords the two password
Secrets hold, and checksum annotations must see the same content). A value already stored in
the release's Secret is reused (lookup), so upgrades keep passwords and tokens; `helm template`
and --dry-run have no cluster to look up, so they show fresh random values.
*/}}
{{- define "crucible.generated" -}}
{{- if not (hasKey $ "crucibleGenerated") }}
{{- $fullname := include "crucible.fullname" . }}
{{- $redis := lookup "v1" "Secret" .Release.Namespace (printf "%s-redis" $fullname) | default dict }}
{{- $sidecar := lookup "v1" "Secret" .Release.Namespace (printf "%s-sidecar-redis" $fullname) | default dict }}
{{- $tokens := lookup "v1" "Secret" .Release.Namespace (printf "%s-api-tokens" $fullname) | default dict }}
{{- $values := dict
  "dispatcherPassword" (include "crucible.keptOrRandom" (dict "secret" $redis "key" "dispatcher-password" "length" 32))
  "sidecarPassword" (include "crucible.keptOrRandom" (dict "secret" $sidecar "key" "password" "length" 32))
  "apiToken" (include "crucible.keptOrRandom" (dict "secret" $tokens "key" "tokens" "length" 40)) }}
{{- $_ := set $ "crucibleGenerated" $values }}
{{- end }}
{{- toJson (get $ "crucibleGenerated") }}
{{- end }}

{{/*
crucible.keptOrRandom: the decoded value of key in an existing Secret (a lookup result), else a
new random alphanumeric string (URL-safe, so it can sit in a Redis URL). Takes a dict: secret,
key, length.
*/}}
{{- define "crucible.keptOrRandom" -}}
{{- $data := get .secret "data" | default dict }}
{{- if hasKey $data .key }}
{{- index $data .key | b64dec }}
{{- else }}
{{- randAlphaNum (int .length) }}
{{- end }}
{{- end }}

{{/*
crucible.redis.aclFile: the Redis ACL file. `default` is off; `dispatcher` has every command but
the @dangerous ones (FLUSHALL, KEYS, CONFIG, ...) on crucible's keys and the legacy channels;
`sidecar` may run only what sidecar/publish.lua calls (read it before changing this), on crucible's event keys and the
evaluation:* channels. Passwords are stored as SHA-256 hashes. Takes a dict: dispatcherPassword,
sidecarPassword.
*/}}
{{- define "crucible.redis.aclFile" -}}
{{- if or (not .dispatcherPassword) (not .sidecarPassword) }}{{ fail "crucible.redis.aclFile: both passwords are required" }}{{ end -}}
user default off resetkeys resetchannels -@all
user dispatcher on #{{ sha256sum .dispatcherPassword }} resetkeys ~crucible:* resetchannels &evaluation:* -@all +@all -@dangerous
user sidecar on #{{ sha256sum .sidecarPassword }} resetkeys ~crucible:events ~crucible:events:* ~crucible:pub:* resetchannels &evaluation:* -@all +ping +select +evalsha +eval +script|load +xadd +hget +hset +hsetnx +hincrby +expire +publish
{{ end }}
