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
crucible.dispatcher.leaseName: the Lease the dispatcher replicas elect the one that runs the
reconciler with (the Deployment's setting and the Role's resourceNames).
*/}}
{{- define "crucible.dispatcher.leaseName" -}}
{{- printf "%s-reconciler" (include "crucible.fullname" .) }}
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
(dispatcher/backends/kube/jobs/names.py: managed-by crucible, crucible.dev/instance = the release name); the
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
crucible.redis.host: the Redis host the dispatcher connects to (nothing else does).
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
crucible.redis.url: the dispatcher's Redis URL, its password left as $(REDIS_PASSWORD) for the
kubelet to expand from the Secret (the password is never rendered into the Deployment). The
built-in Redis has the `dispatcher` ACL user; an external one has externalRedis.dispatcherUsername
(empty: the `default` user).
*/}}
{{- define "crucible.redis.url" -}}
{{- $user := ternary "dispatcher" .Values.externalRedis.dispatcherUsername .Values.redis.enabled }}
{{- if include "crucible.redis.sentinelMaster" . }}
{{- printf "redis://%s:$(REDIS_PASSWORD)@%s/0" $user (required "externalRedis.sentinels is required with externalRedis.sentinelMasterName" (join "," .Values.externalRedis.sentinels | default "")) }}
{{- else }}
{{- printf "redis://%s:$(REDIS_PASSWORD)@%s:%s/0" $user (include "crucible.redis.host" .) (include "crucible.redis.port" .) }}
{{- end }}
{{- end }}

{{/*
crucible.redis.sentinelMaster: the master's name at the external Redis's Sentinels (empty: the
built-in Redis, or an external one without Sentinel).
*/}}
{{- define "crucible.redis.sentinelMaster" -}}
{{- if not .Values.redis.enabled }}
{{- if and .Values.externalRedis.sentinelMasterName .Values.externalRedis.cluster }}
{{- fail "externalRedis.cluster and externalRedis.sentinelMasterName exclude each other" }}
{{- end }}
{{- .Values.externalRedis.sentinelMasterName }}
{{- end }}
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
crucible.redis.maxmemory: Redis's `maxmemory`: redis.maxmemory when set, else 80% of the Redis
container's memory limit in bytes (the rest is headroom for the server itself, client buffers
and the append-only-file rewrite's fork), so Redis refuses writes before the kubelet kills it.
*/}}
{{- define "crucible.redis.maxmemory" -}}
{{- if .Values.redis.maxmemory }}
{{- .Values.redis.maxmemory }}
{{- else }}
{{- $limit := dig "limits" "memory" "" (.Values.redis.resources | default dict) }}
{{- if not $limit }}
{{- fail "redis.maxmemory is empty and redis.resources.limits.memory is unset: set one of them (Redis must refuse writes before it runs out of memory)" }}
{{- end }}
{{- $bytes := include "crucible.quantityBytes" $limit | float64 }}
{{- printf "%d" (int64 (floor (mulf $bytes 0.8))) }}
{{- end }}
{{- end }}

{{/*
crucible.quantityBytes: a Kubernetes memory quantity ("512Mi", "1G", "536870912", "1.5Gi") in
bytes, as an integer string. Fails on forms a memory limit should not use (milli units,
exponents).
*/}}
{{- define "crucible.quantityBytes" -}}
{{- $text := . | toString }}
{{- if or (kindIs "float64" .) (kindIs "int64" .) (kindIs "int" .) }}{{ $text = int64 . | toString }}{{ end }}
{{- if not (regexMatch `^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$` $text) }}
{{- fail (printf "cannot read the memory quantity %q: use a form like 512Mi or 1G, or set redis.maxmemory" $text) }}
{{- end }}
{{- $number := regexFind `^[0-9]+(\.[0-9]+)?` $text }}
{{- $suffix := trimPrefix $number $text }}
{{- $factors := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "P" 1000000000000000 "E" 1000000000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "Pi" 1125899906842624 "Ei" 1152921504606846976 }}
{{- printf "%d" (int64 (floor (mulf (float64 $number) (float64 (get $factors $suffix))))) }}
{{- end }}

{{/*
crucible.ingestKey.secretName: the Secret holding the key sidecar credentials derive from.
*/}}
{{- define "crucible.ingestKey.secretName" -}}
{{- default (printf "%s-ingest-key" (include "crucible.fullname" .)) .Values.dispatcher.ingestKey.existingSecret }}
{{- end }}

{{/*
crucible.ingestKey.secretKey: key of the ingest key in that Secret.
*/}}
{{- define "crucible.ingestKey.secretKey" -}}
{{- if .Values.dispatcher.ingestKey.existingSecret }}{{ .Values.dispatcher.ingestKey.existingSecretKey }}{{ else }}ingest-key{{ end }}
{{- end }}

{{/*
crucible.dispatcher.ingestUrl: the dispatcher's URL as evaluation pods reach it: its Service by
the namespace-qualified name, on the Service port. Sidecars POST their events there.
*/}}
{{- define "crucible.dispatcher.ingestUrl" -}}
{{- printf "http://%s.%s.svc:%v" (include "crucible.dispatcher.fullname" .) .Release.Namespace .Values.dispatcher.service.port }}
{{- end }}

{{/*
crucible.generated: the generated secret values as JSON, computed once per render and shared
by every template that needs them (the ACL file must hash the password the Redis Secret holds,
and checksum annotations must see the same content). A value already stored in
the release's Secret is reused (lookup), so upgrades keep passwords and tokens; `helm template`
and --dry-run have no cluster to look up, so they show fresh random values.
*/}}
{{- define "crucible.generated" -}}
{{- if not (hasKey $ "crucibleGenerated") }}
{{- $fullname := include "crucible.fullname" . }}
{{- $redis := lookup "v1" "Secret" .Release.Namespace (printf "%s-redis" $fullname) | default dict }}
{{- $tokens := lookup "v1" "Secret" .Release.Namespace (printf "%s-api-tokens" $fullname) | default dict }}
{{- $ingest := lookup "v1" "Secret" .Release.Namespace (printf "%s-ingest-key" $fullname) | default dict }}
{{- $values := dict
  "dispatcherPassword" (include "crucible.keptOrRandom" (dict "secret" $redis "key" "dispatcher-password" "length" 32))
  "apiToken" (include "crucible.keptOrRandom" (dict "secret" $tokens "key" "tokens" "length" 40))
  "ingestKey" (include "crucible.keptOrRandom" (dict "secret" $ingest "key" "ingest-key" "length" 64)) }}
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
crucible.redis.aclFile: the Redis ACL file. `default` is off; `dispatcher`, the one user, has
every command but the @dangerous ones (FLUSHALL, KEYS, CONFIG, ...) on crucible's keys and the
legacy channels. Evaluation pods have no user: their sidecars hand events to the dispatcher over
HTTP. The password is stored as a SHA-256 hash. Takes a dict: dispatcherPassword.
*/}}
{{- define "crucible.redis.aclFile" -}}
{{- if not .dispatcherPassword }}{{ fail "crucible.redis.aclFile: the dispatcher's password is required" }}{{ end -}}
user default off resetkeys resetchannels -@all
user dispatcher on #{{ sha256sum .dispatcherPassword }} resetkeys ~crucible:* resetchannels &evaluation:* -@all +@all -@dangerous
{{ end }}
