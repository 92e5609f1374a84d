{{- define "jailsync.labels" -}}
app.kubernetes.io/name: jailsync
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
