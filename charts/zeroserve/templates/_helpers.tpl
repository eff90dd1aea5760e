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
The security contexts of one component's pod and containers: the chart-wide
podSecurityContext / containerSecurityContext, then the component's own keys over them.
A key set to "" (or null) is left out, so that OpenShift's restricted SCC can assign
runAsUser, runAsGroup and fsGroup from the namespace's range. The defaults (values.yaml)
meet the "restricted" Pod Security Standard, so the release namespace can enforce it.
Call with (dict "base" .Values.podSecurityContext "over" $a.podSecurityContext).
*/}}
{{- define "zeroserve.securityContext" -}}
{{- $out := dict -}}
{{- range $k, $v := .base }}{{ $_ := set $out $k $v }}{{ end -}}
{{- range $k, $v := .over }}{{ $_ := set $out $k $v }}{{ end -}}
{{- range $k, $v := $out -}}
{{- if or (kindIs "invalid" $v) (and (kindIs "string" $v) (eq $v "")) }}{{ $_ := unset $out $k }}{{ end -}}
{{- end -}}
{{ toYaml $out }}
{{- end -}}

{{/*
Pod labels of a component: the selector, Istio's injection switch, then the
component's podLabels. The components reach the revisions' queue-proxies directly by pod
IP (the NetworkPolicies are written for that), so they stay out of the mesh unless
istio.injectSidecar says otherwise. A podLabels key the chart sets itself is an error:
it would change the selector or the mesh switch.
Call with (dict "ctx" $ "component" "activator" "values" .Values.activator).
*/}}
{{- define "zeroserve.podLabels" -}}
{{- $labels := include "zeroserve.componentLabels" . | fromYaml -}}
{{- $_ := set $labels "sidecar.istio.io/inject" (toString .ctx.Values.istio.injectSidecar) -}}
{{- range $k, $v := .values.podLabels -}}
{{- if hasKey $labels $k -}}
{{- fail (printf "%s.podLabels.%s: the chart sets this label itself (selector or mesh switch); choose another key" $.component $k) -}}
{{- end -}}
{{- $_ := set $labels $k (toString $v) -}}
{{- end -}}
{{ toYaml $labels }}
{{- end -}}

{{/*
The template's metadata of a component's pod: its labels, and its podAnnotations when
given (e.g. proxy.istio.io/config, or a cluster autoscaler's safe-to-evict).
Call with (dict "ctx" $ "component" "activator" "values" .Values.activator).
*/}}
{{- define "zeroserve.podMetadata" -}}
labels:
  {{- include "zeroserve.podLabels" . | nindent 2 }}
{{- with .values.podAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
The component's extraEnv after the variables the chart sets (`reserved`); naming one of
those is an error, as the later entry would silently win.
Call with (dict "component" "activator" "values" $a "reserved" (list "POD_NAME")).
*/}}
{{- define "zeroserve.extraEnv" -}}
{{- range .values.extraEnv -}}
{{- if has .name $.reserved -}}
{{- fail (printf "%s.extraEnv: %s is set by the chart; choose another variable" $.component .name) -}}
{{- end -}}
{{- end -}}
{{- with .values.extraEnv }}{{ toYaml . }}{{ end -}}
{{- end -}}

{{/*
The component's affinity, plus (when `spread` is true and the values name no
podAntiAffinity) a preferred anti-affinity by hostname among its own pods, as Knative's
config/core/deployments give the activator and the controller: one node going away then
leaves another replica. podAntiAffinity: {} in the values turns it off.
Call with (dict "ctx" $ "component" "activator" "values" $a "spread" true).
*/}}
{{- define "zeroserve.affinity" -}}
{{- $affinity := deepCopy (.values.affinity | default dict) -}}
{{- if and .spread (not (hasKey $affinity "podAntiAffinity")) -}}
{{- $selector := include "zeroserve.selectorLabels" . | fromYaml -}}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" $selector) -}}
{{- $_ := set $affinity "podAntiAffinity" (dict "preferredDuringSchedulingIgnoredDuringExecution" (list (dict "weight" 100 "podAffinityTerm" $term))) -}}
{{- end -}}
{{- with $affinity }}{{ toYaml . }}{{ end -}}
{{- end -}}

{{/* The common tail of each pod spec: imagePullSecrets, priority, scheduling, the /tmp
volume. Call with (dict "ctx" $ "values" .Values.activator "affinity" $yaml
"tolerations" $list "spread" $list). */}}
{{- define "zeroserve.podCommon" -}}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- . | nindent 2 }}
{{- end }}
{{- with .spread }}
topologySpreadConstraints:
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
