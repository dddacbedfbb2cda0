{{/* Names and labels. */}}
{{- define "aether.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "aether.fullname" -}}
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

{{- define "aether.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aether.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "aether.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "aether.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: control-plane
app.kubernetes.io/part-of: aether
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "aether.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "aether.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The server's image; also the fetcher's unless AETHER_FETCHER_IMAGE says otherwise. */}}
{{- define "aether.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Where the apps run: the Role, the RoleBinding and AETHER_DEFAULT_NAMESPACE. */}}
{{- define "aether.appsNamespace" -}}
{{- default .Release.Namespace (include "aether.value" .Values.config.AETHER_DEFAULT_NAMESPACE) -}}
{{- end -}}

{{- define "aether.secretName" -}}
{{- default (include "aether.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{/*
A value as the server reads it. Numbers are written out in full (values arrive as float64,
which would otherwise print 2147483648 as 2.147483648e+09); null prints as empty.
*/}}
{{- define "aether.value" -}}
{{- if kindIs "invalid" . -}}
{{- else if and (kindIs "float64" .) (eq . (floor .)) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/* The container port: the port of AETHER_LISTEN. */}}
{{- define "aether.port" -}}
{{- $listen := include "aether.value" .Values.config.AETHER_LISTEN -}}
{{- $port := regexFind "[0-9]+$" $listen -}}
{{- if not (regexMatch ":[0-9]+$" $listen) -}}
{{- fail (printf "config.AETHER_LISTEN must be host:port, got %q" $listen) -}}
{{- end -}}
{{- $port -}}
{{- end -}}

{{- define "aether.scheme" -}}
{{- if .Values.tls.enabled }}https{{ else }}http{{ end -}}
{{- end -}}

{{- define "aether.publicUrl" -}}
{{- $set := include "aether.value" .Values.config.AETHER_PUBLIC_URL -}}
{{- if $set -}}
{{- $set -}}
{{- else if .Values.ingress.enabled -}}
{{- printf "%s://%s" (ternary "https" "http" (ne .Values.ingress.tlsSecretName "")) .Values.ingress.host -}}
{{- else -}}
{{- printf "%s://%s.%s.svc:%v" (include "aether.scheme" .) (include "aether.fullname" .) .Release.Namespace .Values.service.port -}}
{{- end -}}
{{- end -}}

{{/*
Every variable of the ConfigMap, as YAML: the set values of `config`, plus what the chart
derives (public URL, TLS file paths, fetcher image, apps' namespace).
*/}}
{{- define "aether.config" -}}
{{- $config := dict -}}
{{- range $name, $value := .Values.config -}}
{{- $text := include "aether.value" $value -}}
{{- if ne $text "" -}}
{{- $_ := set $config $name $text -}}
{{- end -}}
{{- end -}}
{{- $_ := set $config "AETHER_PUBLIC_URL" (include "aether.publicUrl" .) -}}
{{- $_ := set $config "AETHER_DEFAULT_NAMESPACE" (include "aether.appsNamespace" .) -}}
{{- if not (hasKey $config "AETHER_FETCHER_IMAGE") -}}
{{- $_ := set $config "AETHER_FETCHER_IMAGE" (include "aether.image" .) -}}
{{- end -}}
{{- if .Values.tls.enabled -}}
{{- if not (hasKey $config "AETHER_TLS_CERT") -}}
{{- $_ := set $config "AETHER_TLS_CERT" "/etc/aether/tls/tls.crt" -}}
{{- end -}}
{{- if not (hasKey $config "AETHER_TLS_KEY") -}}
{{- $_ := set $config "AETHER_TLS_KEY" "/etc/aether/tls/tls.key" -}}
{{- end -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/* The secret variables the container reads: every documented key of an existing Secret, or
the set ones of `secrets`. */}}
{{- define "aether.secretKeys" -}}
{{- $keys := list -}}
{{- range $name, $value := .Values.secrets -}}
{{- if or $.Values.existingSecret (ne (include "aether.value" $value) "") -}}
{{- $keys = append $keys $name -}}
{{- end -}}
{{- end -}}
{{- toJson $keys -}}
{{- end -}}

{{/* Combinations that cannot work, refused before anything is applied. */}}
{{- define "aether.validate" -}}
{{- $config := .Values.config -}}
{{- $storage := include "aether.value" $config.AETHER_STORAGE_MODE -}}
{{- $runtime := include "aether.value" $config.AETHER_RUNTIME -}}
{{- if and (eq $storage "local") (gt (int .Values.replicaCount) 1) -}}
{{- fail "AETHER_STORAGE_MODE=local keeps artifacts on one pod's volume: use replicaCount=1, or AETHER_STORAGE_MODE=s3" -}}
{{- end -}}
{{- if and (eq $runtime "local") (gt (int .Values.replicaCount) 1) -}}
{{- fail "AETHER_RUNTIME=local runs releases inside one server pod: use replicaCount=1, or AETHER_RUNTIME=kubernetes" -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) -}}
{{- fail "tls.enabled needs tls.secretName (a kubernetes.io/tls Secret)" -}}
{{- end -}}
{{- if and (not .Values.tls.enabled) (or (include "aether.value" $config.AETHER_TLS_CERT) (include "aether.value" $config.AETHER_TLS_KEY)) -}}
{{- fail "config.AETHER_TLS_CERT / AETHER_TLS_KEY name files of the mounted tls.secretName: set tls.enabled" -}}
{{- end -}}
{{- if and .Values.persistence.enabled (gt (int .Values.replicaCount) 1) (has "ReadWriteOnce" .Values.persistence.accessModes) -}}
{{- fail "persistence with ReadWriteOnce holds one pod: use replicaCount=1" -}}
{{- end -}}
{{- end -}}
