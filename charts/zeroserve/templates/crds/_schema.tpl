{{/*
OpenAPI v3 pieces shared by the four serving.knative.dev/v1 CRDs. The schemas are
structural and list the fields zeroserve supports, so the API server rejects (with
kubectl's strict field validation) or prunes anything else. Two bodies keep unknown
fields on purpose: probes and resources, where Knative accepts handlers and fields
zeroserve does not run (exec and gRPC probes, resource claims); they must reach the
controller, which refuses them by name, rather than vanish.
*/}}

{{/* metadata.name of a Service, Configuration or Route becomes part of host names. */}}
{{- define "zeroserve.crd.rootMetadata" -}}
metadata:
  type: object
  properties:
    name:
      type: string
      maxLength: 63
      pattern: '^[a-z]([-a-z0-9]*[a-z0-9])?$'
{{- end -}}

{{/* A map of strings: labels, annotations. */}}
{{- define "zeroserve.crd.stringMap" -}}
type: object
additionalProperties:
  type: string
{{- end -}}

{{- define "zeroserve.crd.probe" -}}
type: object
x-kubernetes-preserve-unknown-fields: true
properties:
  httpGet:
    type: object
    properties:
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
      port:
        x-kubernetes-int-or-string: true
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

{{/* The revision spec: a Revision's spec, and the spec of a Service's or Configuration's
template. One user container, as zeroserve runs one per replica (validated by the
controller, which also applies config-defaults to what is left out). */}}
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
      type: object
      required: [image]
      properties:
        name:
          type: string
        image:
          type: string
          minLength: 1
        command:
          type: array
          items:
            type: string
        args:
          type: array
          items:
            type: string
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
          {{- include "zeroserve.crd.probe" . | nindent 10 }}
        livenessProbe:
          {{- include "zeroserve.crd.probe" . | nindent 10 }}
        resources:
          type: object
          x-kubernetes-preserve-unknown-fields: true
          properties:
            limits:
              {{- include "zeroserve.crd.quantities" . | nindent 14 }}
            requests:
              {{- include "zeroserve.crd.quantities" . | nindent 14 }}
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
