{{/*
OpenAPI v3 pieces shared by the four serving.knative.dev/v1 CRDs. The schemas are
structural and list the pod spec fields Knative accepts, with their types, so the API
server rejects (with kubectl's strict field validation) or prunes anything else: env
(value, valueFrom secretKeyRef/configMapKeyRef/fieldRef/resourceFieldRef), envFrom,
volumes (secret, configMap, projected, emptyDir, persistentVolumeClaim...),
volumeMounts, probes (httpGet, tcpSocket, exec, grpc), securityContext, resources,
serviceAccountName, imagePullSecrets, imagePullPolicy, several containers,
initContainers. As in Knative's own CRDs, the fields behind a config-features flag
that are whole Kubernetes types (affinity, tolerations, topologySpreadConstraints,
hostAliases, dnsConfig, the pod securityContext, fieldRef/resourceFieldRef, and the
csi/ephemeral/hostPath/image/emptyDir/persistentVolumeClaim volume sources) keep
unknown fields and name their flag: the controller checks them against the flags in
force and refuses them by name, rather than the API server pruning them.
*/}}

{{/* metadata.name of a Service, Configuration or Route becomes part of host names;
generateName lets the API server pick the name (kubectl create). */}}
{{- define "zeroserve.crd.rootMetadata" -}}
metadata:
  type: object
  properties:
    name:
      type: string
      maxLength: 63
      pattern: '^[a-z]([-a-z0-9]*[a-z0-9])?$'
    generateName:
      type: string
{{- end -}}

{{/* A map of strings: labels, annotations. */}}
{{- define "zeroserve.crd.stringMap" -}}
type: object
additionalProperties:
  type: string
{{- end -}}

{{/* A list of strings. */}}
{{- define "zeroserve.crd.strings" -}}
type: array
items:
  type: string
{{- end -}}

{{/* A field behind a config-features flag, kept whole (call with the flag's name). */}}
{{- define "zeroserve.crd.flagged" -}}
description: This is accessible behind a feature flag - {{ . }}
type: object
x-kubernetes-preserve-unknown-fields: true
{{- end -}}

{{/* secretKeyRef / configMapKeyRef: one key of an object in the namespace. */}}
{{- define "zeroserve.crd.keyRef" -}}
type: object
required: [key]
properties:
  name:
    type: string
  key:
    type: string
  optional:
    type: boolean
{{- end -}}

{{/* secretRef / configMapRef of envFrom. */}}
{{- define "zeroserve.crd.objectRef" -}}
type: object
properties:
  name:
    type: string
  optional:
    type: boolean
{{- end -}}

{{/* items of a secret or configMap volume (or projection): key -> file. */}}
{{- define "zeroserve.crd.keyToPath" -}}
type: array
items:
  type: object
  required: [key, path]
  properties:
    key:
      type: string
    path:
      type: string
    mode:
      type: integer
      format: int32
{{- end -}}

{{- define "zeroserve.crd.probe" -}}
type: object
properties:
  httpGet:
    type: object
    properties:
      host:
        type: string
      path:
        type: string
      port:
        x-kubernetes-int-or-string: true
      scheme:
        type: string
        enum: [HTTP, HTTPS]
      httpHeaders:
        type: array
        items:
          type: object
          required: [name]
          properties:
            name:
              type: string
            value:
              type: string
  tcpSocket:
    type: object
    properties:
      host:
        type: string
      port:
        x-kubernetes-int-or-string: true
  exec:
    description: Run by the kubelet in the container (a readiness exec probe stays there; the queue-proxy then checks TCP on the user port).
    type: object
    properties:
      command:
        {{- include "zeroserve.crd.strings" . | nindent 8 }}
  grpc:
    description: The gRPC health checking protocol; port 0 or absent means the container's port.
    type: object
    properties:
      port:
        type: integer
        format: int32
        minimum: 0
      service:
        type: string
  initialDelaySeconds:
    type: integer
    format: int32
    minimum: 0
  timeoutSeconds:
    type: integer
    format: int32
    minimum: 0
  # 0 is Knative's "aggressive" mode: the queue-proxy retries every 50 ms.
  periodSeconds:
    type: integer
    format: int32
    minimum: 0
  successThreshold:
    type: integer
    format: int32
    minimum: 0
  failureThreshold:
    type: integer
    format: int32
    minimum: 0
  terminationGracePeriodSeconds:
    type: integer
    format: int64
    minimum: 0
{{- end -}}

{{/* A resource quantity: 500m, 128Mi, 2. */}}
{{- define "zeroserve.crd.quantities" -}}
type: object
additionalProperties:
  x-kubernetes-int-or-string: true
{{- end -}}

{{/* A container's securityContext: the fields Knative allows (capabilities.add beyond
NET_BIND_SERVICE needs kubernetes.containerspec-addcapabilities). */}}
{{- define "zeroserve.crd.containerSecurityContext" -}}
type: object
properties:
  allowPrivilegeEscalation:
    type: boolean
  capabilities:
    type: object
    properties:
      add:
        {{- include "zeroserve.crd.strings" . | nindent 8 }}
      drop:
        {{- include "zeroserve.crd.strings" . | nindent 8 }}
  privileged:
    type: boolean
  readOnlyRootFilesystem:
    type: boolean
  runAsGroup:
    type: integer
    format: int64
  runAsNonRoot:
    type: boolean
  runAsUser:
    type: integer
    format: int64
  seccompProfile:
    type: object
    properties:
      type:
        type: string
      localhostProfile:
        type: string
{{- end -}}

{{/* One container: the serving one, a sidecar or an init container. */}}
{{- define "zeroserve.crd.container" -}}
type: object
required: [image]
properties:
  name:
    type: string
  image:
    type: string
    minLength: 1
  imagePullPolicy:
    type: string
    enum: [Always, IfNotPresent, Never]
  command:
    {{- include "zeroserve.crd.strings" . | nindent 4 }}
  args:
    {{- include "zeroserve.crd.strings" . | nindent 4 }}
  workingDir:
    type: string
  env:
    type: array
    # Keyed by name: a variable given twice is an error, and server-side apply
    # merges entries by name.
    x-kubernetes-list-type: map
    x-kubernetes-list-map-keys: [name]
    items:
      type: object
      required: [name]
      properties:
        name:
          type: string
          minLength: 1
        value:
          type: string
        valueFrom:
          type: object
          properties:
            secretKeyRef:
              {{- include "zeroserve.crd.keyRef" . | nindent 14 }}
            configMapKeyRef:
              {{- include "zeroserve.crd.keyRef" . | nindent 14 }}
            fieldRef:
              {{- include "zeroserve.crd.flagged" "kubernetes.podspec-fieldref" | nindent 14 }}
            resourceFieldRef:
              {{- include "zeroserve.crd.flagged" "kubernetes.podspec-fieldref" | nindent 14 }}
  envFrom:
    type: array
    items:
      type: object
      properties:
        prefix:
          type: string
        configMapRef:
          {{- include "zeroserve.crd.objectRef" . | nindent 10 }}
        secretRef:
          {{- include "zeroserve.crd.objectRef" . | nindent 10 }}
  ports:
    type: array
    items:
      type: object
      properties:
        containerPort:
          type: integer
          format: int32
          minimum: 1
          maximum: 65535
        name:
          description: http1 or h2c (or empty).
          type: string
        protocol:
          type: string
  readinessProbe:
    {{- include "zeroserve.crd.probe" . | nindent 4 }}
  livenessProbe:
    {{- include "zeroserve.crd.probe" . | nindent 4 }}
  startupProbe:
    {{- include "zeroserve.crd.probe" . | nindent 4 }}
  resources:
    type: object
    properties:
      limits:
        {{- include "zeroserve.crd.quantities" . | nindent 8 }}
      requests:
        {{- include "zeroserve.crd.quantities" . | nindent 8 }}
  securityContext:
    {{- include "zeroserve.crd.containerSecurityContext" . | nindent 4 }}
  volumeMounts:
    type: array
    x-kubernetes-list-type: map
    x-kubernetes-list-map-keys: [mountPath]
    items:
      type: object
      required: [name, mountPath]
      properties:
        name:
          type: string
        mountPath:
          type: string
        readOnly:
          type: boolean
        subPath:
          type: string
        mountPropagation:
          description: This is accessible behind a feature flag - kubernetes.podspec-volumes-mount-propagation
          type: string
  terminationMessagePath:
    type: string
  terminationMessagePolicy:
    type: string
    enum: [File, FallbackToLogsOnError]
{{- end -}}

{{/* One volume: the sources Knative allows, the flag-gated ones kept whole. */}}
{{- define "zeroserve.crd.volume" -}}
type: object
required: [name]
properties:
  name:
    type: string
  secret:
    type: object
    properties:
      secretName:
        type: string
      items:
        {{- include "zeroserve.crd.keyToPath" . | nindent 8 }}
      defaultMode:
        type: integer
        format: int32
      optional:
        type: boolean
  configMap:
    type: object
    properties:
      name:
        type: string
      items:
        {{- include "zeroserve.crd.keyToPath" . | nindent 8 }}
      defaultMode:
        type: integer
        format: int32
      optional:
        type: boolean
  projected:
    type: object
    properties:
      defaultMode:
        type: integer
        format: int32
      sources:
        type: array
        items:
          type: object
          properties:
            secret:
              type: object
              properties:
                name:
                  type: string
                items:
                  {{- include "zeroserve.crd.keyToPath" . | nindent 18 }}
                optional:
                  type: boolean
            configMap:
              type: object
              properties:
                name:
                  type: string
                items:
                  {{- include "zeroserve.crd.keyToPath" . | nindent 18 }}
                optional:
                  type: boolean
            downwardAPI:
              type: object
              properties:
                items:
                  type: array
                  items:
                    type: object
                    required: [path]
                    properties:
                      path:
                        type: string
                      mode:
                        type: integer
                        format: int32
                      fieldRef:
                        type: object
                        required: [fieldPath]
                        properties:
                          apiVersion:
                            type: string
                          fieldPath:
                            type: string
                      resourceFieldRef:
                        type: object
                        required: [resource]
                        properties:
                          containerName:
                            type: string
                          resource:
                            type: string
                          divisor:
                            x-kubernetes-int-or-string: true
            serviceAccountToken:
              type: object
              required: [path]
              properties:
                audience:
                  type: string
                expirationSeconds:
                  type: integer
                  format: int64
                path:
                  type: string
  emptyDir:
    {{- include "zeroserve.crd.flagged" "kubernetes.podspec-volumes-emptydir" | nindent 4 }}
  persistentVolumeClaim:
    {{- include "zeroserve.crd.flagged" "kubernetes.podspec-persistent-volume-claim" | nindent 4 }}
  csi:
    {{- include "zeroserve.crd.flagged" "kubernetes.podspec-volumes-csi" | nindent 4 }}
  ephemeral:
    {{- include "zeroserve.crd.flagged" "kubernetes.podspec-volumes-ephemeral" | nindent 4 }}
  hostPath:
    {{- include "zeroserve.crd.flagged" "kubernetes.podspec-volumes-hostpath" | nindent 4 }}
  image:
    {{- include "zeroserve.crd.flagged" "kubernetes.podspec-volumes-image" | nindent 4 }}
{{- end -}}

{{/* An array of whole Kubernetes objects behind a flag (call with the flag's name). */}}
{{- define "zeroserve.crd.flaggedList" -}}
description: This is accessible behind a feature flag - {{ . }}
type: array
items:
  description: This is accessible behind a feature flag - {{ . }}
  type: object
  x-kubernetes-preserve-unknown-fields: true
{{- end -}}

{{/* The revision spec: a Revision's spec, and the spec of a Service's or Configuration's
template: Knative's pod spec subset (exactly one container with a port, or a single
container, serves; the others are sidecars: validated by the controller, which also
applies config-defaults and config-features). */}}
{{- define "zeroserve.crd.revisionSpec" -}}
type: object
required: [containers]
properties:
  containerConcurrency:
    description: Most requests in flight per replica; 0 means no limit.
    type: integer
    format: int64
    minimum: 0
  timeoutSeconds:
    description: Longest time a request may take, in seconds.
    type: integer
    format: int64
    minimum: 0
  responseStartTimeoutSeconds:
    description: Longest wait for the first byte of a response, in seconds.
    type: integer
    format: int64
    minimum: 0
  idleTimeoutSeconds:
    description: Longest gap between two writes of a response, in seconds.
    type: integer
    format: int64
    minimum: 0
  containers:
    type: array
    minItems: 1
    items:
      {{- include "zeroserve.crd.container" . | nindent 6 }}
  initContainers:
    description: This is accessible behind a feature flag - kubernetes.podspec-init-containers
    type: array
    items:
      {{- include "zeroserve.crd.container" . | nindent 6 }}
  volumes:
    type: array
    x-kubernetes-list-type: map
    x-kubernetes-list-map-keys: [name]
    items:
      {{- include "zeroserve.crd.volume" . | nindent 6 }}
  serviceAccountName:
    type: string
  automountServiceAccountToken:
    type: boolean
  imagePullSecrets:
    type: array
    x-kubernetes-list-type: map
    x-kubernetes-list-map-keys: [name]
    items:
      type: object
      properties:
        name:
          type: string
          default: ""
  enableServiceLinks:
    description: Whether Service environment variables are injected; false unless set (config-defaults).
    type: boolean
  securityContext:
    description: This is accessible behind a feature flag - kubernetes.podspec-securitycontext
    type: object
    x-kubernetes-preserve-unknown-fields: true
    properties:
      runAsUser:
        type: integer
        format: int64
      runAsGroup:
        type: integer
        format: int64
      runAsNonRoot:
        type: boolean
      fsGroup:
        type: integer
        format: int64
      supplementalGroups:
        type: array
        items:
          type: integer
          format: int64
      seccompProfile:
        type: object
        properties:
          type:
            type: string
          localhostProfile:
            type: string
  affinity:
    {{- include "zeroserve.crd.flagged" "kubernetes.podspec-affinity" | nindent 4 }}
  tolerations:
    {{- include "zeroserve.crd.flaggedList" "kubernetes.podspec-tolerations" | nindent 4 }}
  topologySpreadConstraints:
    {{- include "zeroserve.crd.flaggedList" "kubernetes.podspec-topologyspreadconstraints" | nindent 4 }}
  hostAliases:
    {{- include "zeroserve.crd.flaggedList" "kubernetes.podspec-hostaliases" | nindent 4 }}
  dnsConfig:
    {{- include "zeroserve.crd.flagged" "kubernetes.podspec-dnsconfig" | nindent 4 }}
  nodeSelector:
    description: This is accessible behind a feature flag - kubernetes.podspec-nodeselector
    {{- include "zeroserve.crd.stringMap" . | nindent 4 }}
  dnsPolicy:
    description: This is accessible behind a feature flag - kubernetes.podspec-dnspolicy
    type: string
  runtimeClassName:
    description: This is accessible behind a feature flag - kubernetes.podspec-runtimeclassname
    type: string
  priorityClassName:
    description: This is accessible behind a feature flag - kubernetes.podspec-priorityclassname
    type: string
  schedulerName:
    description: This is accessible behind a feature flag - kubernetes.podspec-schedulername
    type: string
  shareProcessNamespace:
    description: This is accessible behind a feature flag - kubernetes.podspec-shareprocessnamespace
    type: boolean
  hostIPC:
    description: This is accessible behind a feature flag - kubernetes.podspec-hostipc
    type: boolean
  hostPID:
    description: This is accessible behind a feature flag - kubernetes.podspec-hostpid
    type: boolean
  hostNetwork:
    description: This is accessible behind a feature flag - kubernetes.podspec-hostnetwork
    type: boolean
{{- end -}}

{{/* spec.template of a Service or Configuration: revision metadata and spec. */}}
{{- define "zeroserve.crd.template" -}}
type: object
required: [spec]
properties:
  metadata:
    type: object
    properties:
      name:
        description: The revision's name; it must start with the configuration's name and a dash.
        type: string
        maxLength: 63
      creationTimestamp:
        description: Written as null by kubectl create --dry-run -o yaml; ignored.
        type: string
        nullable: true
      labels:
        {{- include "zeroserve.crd.stringMap" . | nindent 8 }}
      annotations:
        description: autoscaling.knative.dev/* settings of the revision, among others.
        {{- include "zeroserve.crd.stringMap" . | nindent 8 }}
  spec:
    {{- include "zeroserve.crd.revisionSpec" . | nindent 4 }}
{{- end -}}

{{/* One traffic target. In status it also carries the tag's URL; in spec a URL is
not allowed, so the spec variant leaves it out. Call with (dict "status" true|false). */}}
{{- define "zeroserve.crd.trafficTarget" -}}
type: object
properties:
  revisionName:
    type: string
  configurationName:
    type: string
  latestRevision:
    type: boolean
  percent:
    type: integer
    format: int64
    minimum: 0
    maximum: 100
  tag:
    type: string
    maxLength: 63
    pattern: '^[a-z]([-a-z0-9]*[a-z0-9])?$'
  {{- if .status }}
  url:
    type: string
  {{- end }}
{{- end -}}

{{/* The status fields every kind has: generation seen, conditions, annotations. */}}
{{- define "zeroserve.crd.statusCommon" -}}
observedGeneration:
  type: integer
  format: int64
annotations:
  {{- include "zeroserve.crd.stringMap" . | nindent 2 }}
conditions:
  type: array
  items:
    type: object
    required: [type, status]
    properties:
      type:
        type: string
      status:
        type: string
        enum: ["True", "False", "Unknown"]
      severity:
        type: string
      reason:
        type: string
      message:
        type: string
      lastTransitionTime:
        type: string
        format: date-time
{{- end -}}

{{- define "zeroserve.crd.url" -}}
url:
  type: string
address:
  type: object
  properties:
    url:
      type: string
{{- end -}}

{{- define "zeroserve.crd.latestRevisions" -}}
latestCreatedRevisionName:
  type: string
latestReadyRevisionName:
  type: string
{{- end -}}

{{/* The READY and REASON columns, from the Ready condition. */}}
{{- define "zeroserve.crd.readyColumns" -}}
- name: Ready
  type: string
  jsonPath: '.status.conditions[?(@.type=="Ready")].status'
- name: Reason
  type: string
  jsonPath: '.status.conditions[?(@.type=="Ready")].reason'
{{- end -}}

{{/* metadata of each CRD. */}}
{{- define "zeroserve.crd.metadata" -}}
labels:
  {{- include "zeroserve.labels" . | nindent 2 }}
{{- if .Values.crds.keep }}
annotations:
  # Uninstalling must not delete every Knative Service in the cluster with the CRD.
  helm.sh/resource-policy: keep
{{- end }}
{{- end -}}
