{{/*
Shared pieces of the zeroserve chart. Object names inside the release namespace are
fixed (activator, autoscaler, controller, config-*), as the components and Knative's
docs expect them; cluster-scoped names carry the release name.
*/}}

{{/* Prefix of cluster-scoped objects (ClusterRoles and their bindings). */}}
{{- define "zeroserve.fullname" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object of the release. */}}
{{- define "zeroserve.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: zeroserve
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: zeroserve
{{- end -}}

{{/*
Labels that pick one component's pods; used by Deployments, Services, PDBs and
NetworkPolicies alike, so they must never change between upgrades (a Deployment's
selector is immutable). Call with (dict "ctx" $ "component" "activator").
*/}}
{{- define "zeroserve.selectorLabels" -}}
app.kubernetes.io/name: zeroserve
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of one component's objects: the release's plus the selector. */}}
{{- define "zeroserve.componentLabels" -}}
{{ include "zeroserve.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The image reference: repository@digest when a digest is given, else repository:tag. */}}
{{- define "zeroserve.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/*
Pod-level security: never root, the image's user 65532, the runtime's default seccomp
profile. Together with zeroserve.containerSecurityContext this meets the "restricted"
Pod Security Standard, so the release namespace can enforce it.
*/}}
{{- define "zeroserve.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
Container-level security, repeated per container so that it holds even if a pod-level
field is dropped: a read-only root (PYTHONDONTWRITEBYTECODE is set in the image; /tmp
is an emptyDir), no privilege escalation, no capabilities (no port below 1024 is bound).
*/}}
{{- define "zeroserve.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
Pod labels of every component: the selector, plus Istio's injection switch. The
components reach the revisions' queue-proxies directly by pod IP (the NetworkPolicies are
written for that), so they stay out of the mesh unless istio.injectSidecar says otherwise.
Call with (dict "ctx" $ "component" "activator").
*/}}
{{- define "zeroserve.podLabels" -}}
{{ include "zeroserve.componentLabels" . }}
sidecar.istio.io/inject: {{ .ctx.Values.istio.injectSidecar | quote }}
{{- end -}}

{{/* imagePullSecrets, the /tmp volume, scheduling: the common tail of each pod spec.
Call with (dict "ctx" $ "values" .Values.activator). */}}
{{- define "zeroserve.podCommon" -}}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  # The root filesystem is read-only; anything that needs a scratch file gets /tmp.
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
{{- end -}}

{{/* The /tmp mount matching the volume in zeroserve.podCommon. */}}
{{- define "zeroserve.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/*
One NetworkPolicy ingress rule (a one-item list): TCP `ports` from `peers`. Empty peers
mean "from anywhere", which a rule says by leaving `from` out. Otherwise the `nodeCIDRs`
given are added as ipBlocks, so that the kubelet's probes still pass on CNIs that apply
policies to traffic from the node.
Call with (dict "ports" (list 8012) "peers" $peers "nodeCIDRs" $cidrs).
*/}}
{{- define "zeroserve.ingressRule" -}}
{{- $ports := list -}}
{{- range .ports -}}
{{- $ports = append $ports (dict "port" . "protocol" "TCP") -}}
{{- end -}}
{{- $rule := dict "ports" $ports -}}
{{- if .peers -}}
{{- $from := .peers -}}
{{- range .nodeCIDRs -}}
{{- $from = append $from (dict "ipBlock" (dict "cidr" .)) -}}
{{- end -}}
{{- $_ := set $rule "from" $from -}}
{{- end -}}
{{ toYaml (list $rule) }}
{{- end -}}
