"""Manifests in the shape of the Knative docs' examples of the pod spec features
(secrets, config maps, volumes, service accounts, security contexts, probes, several
containers, long and generated names), shared by the API, controller and chart tests.

Each one has a ``command`` so that it also runs locally, where images are not pulled
(Knative's docs leave it to the image). ``features`` is the ``config-features`` data
the manifest needs; ``local`` says whether ``zeroserve apply`` takes it without a
cluster (volumes need the pod sandbox of a later issue).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DocManifest:
    id: str
    yaml: str
    features: dict[str, str] = field(default_factory=dict)
    local: bool = True


_HEAD = """\
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: {name}
  namespace: default
spec:
  template:
    spec:
"""


def _svc(name: str, body: str) -> str:
    return _HEAD.format(name=name) + body


MANIFESTS: tuple[DocManifest, ...] = (
    DocManifest(
        "env-secret-key-ref",
        _svc(
            "secret-env",
            """\
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          command: ["python", "app.py"]
          env:
            - name: DB_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: db
                  key: password
            - name: OPTIONAL_TOKEN
              valueFrom:
                secretKeyRef:
                  name: tokens
                  key: api
                  optional: true
""",
        ),
    ),
    DocManifest(
        "env-config-map-key-ref",
        _svc(
            "config-env",
            """\
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          command: ["python", "app.py"]
          env:
            - name: TARGET
              valueFrom:
                configMapKeyRef:
                  name: app-settings
                  key: target
""",
        ),
    ),
    DocManifest(
        "env-from",
        _svc(
            "env-from",
            """\
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          command: ["python", "app.py"]
          envFrom:
            - configMapRef:
                name: app-settings
            - prefix: DB_
              secretRef:
                name: db
                optional: false
""",
        ),
    ),
    DocManifest(
        "env-field-ref",
        _svc(
            "field-env",
            """\
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          command: ["python", "app.py"]
          env:
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            - name: POD_IP
              valueFrom:
                fieldRef:
                  fieldPath: status.podIP
            - name: MEMORY_LIMIT
              valueFrom:
                resourceFieldRef:
                  resource: limits.memory
          resources:
            limits:
              memory: 256Mi
""",
        ),
        features={"kubernetes.podspec-fieldref": "enabled"},
    ),
    DocManifest(
        "service-account",
        _svc(
            "with-account",
            """\
      serviceAccountName: app-reader
      automountServiceAccountToken: false
      imagePullSecrets:
        - name: registry-credentials
      enableServiceLinks: false
      containers:
        - image: registry.example.com/team/app:1.2.3
          imagePullPolicy: IfNotPresent
          command: ["python", "app.py"]
""",
        ),
    ),
    DocManifest(
        "security-context",
        _svc(
            "secure",
            """\
      securityContext:
        runAsNonRoot: true
        runAsUser: 1000
        fsGroup: 2000
        seccompProfile:
          type: RuntimeDefault
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          command: ["python", "app.py"]
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            runAsNonRoot: true
            capabilities:
              drop: ["ALL"]
              add: ["NET_BIND_SERVICE"]
            seccompProfile:
              type: RuntimeDefault
""",
        ),
        features={
            "kubernetes.podspec-securitycontext": "enabled",
            "kubernetes.containerspec-addcapabilities": "enabled",
        },
    ),
    DocManifest(
        "container-security-context-default",
        _svc(
            "restricted",
            """\
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          command: ["python", "app.py"]
          securityContext:
            runAsNonRoot: true
            allowPrivilegeEscalation: false
            capabilities:
              drop: ["ALL"]
            seccompProfile:
              type: RuntimeDefault
""",
        ),
    ),
    DocManifest(
        "probes",
        _svc(
            "probed",
            """\
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          command: ["python", "app.py"]
          ports:
            - containerPort: 8080
          readinessProbe:
            httpGet:
              path: /healthz/ready
              port: 0
            periodSeconds: 1
            timeoutSeconds: 1
            failureThreshold: 3
          livenessProbe:
            tcpSocket:
              port: 8080
            initialDelaySeconds: 3
          startupProbe:
            httpGet:
              path: /healthz/started
            failureThreshold: 30
            periodSeconds: 1
""",
        ),
    ),
    DocManifest(
        "exec-probe",
        _svc(
            "exec-probed",
            """\
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          command: ["python", "app.py"]
          readinessProbe:
            exec:
              command: ["python", "-c", "print('ok')"]
            periodSeconds: 1
""",
        ),
    ),
    DocManifest(
        "grpc-probe",
        _svc(
            "grpc-probed",
            """\
      containers:
        - image: ghcr.io/knative/grpc-ping-go:latest
          command: ["python", "server.py"]
          ports:
            - name: h2c
              containerPort: 8080
          readinessProbe:
            grpc:
              port: 8080
            periodSeconds: 1
""",
        ),
    ),
    DocManifest(
        "multi-container",
        _svc(
            "sidecar",
            """\
      containers:
        - name: first-container
          image: ghcr.io/knative/helloworld-go:latest
          command: ["python", "app.py"]
          ports:
            - containerPort: 8881
        - name: second-container
          image: ghcr.io/knative/helloworld-go:latest
          command: ["python", "sidecar.py"]
          env:
            - name: PORT
              value: "8882"
""",
        ),
    ),
    DocManifest(
        "init-containers",
        _svc(
            "with-init",
            """\
      initContainers:
        - name: migrate
          image: ghcr.io/knative/helloworld-go:latest
          command: ["python", "migrate.py"]
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          command: ["python", "app.py"]
""",
        ),
        features={"kubernetes.podspec-init-containers": "enabled"},
    ),
    DocManifest(
        "volumes",
        _svc(
            "with-volumes",
            """\
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          command: ["python", "app.py"]
          volumeMounts:
            - name: credentials
              mountPath: /etc/credentials
              readOnly: true
            - name: settings
              mountPath: /etc/settings
              readOnly: true
            - name: everything
              mountPath: /etc/everything
              readOnly: true
            - name: scratch
              mountPath: /tmp/scratch
      volumes:
        - name: credentials
          secret:
            secretName: db
            items:
              - key: password
                path: password.txt
        - name: settings
          configMap:
            name: app-settings
        - name: everything
          projected:
            sources:
              - secret:
                  name: db
              - configMap:
                  name: app-settings
              - downwardAPI:
                  items:
                    - path: labels
                      fieldRef:
                        fieldPath: metadata.labels
              - serviceAccountToken:
                  path: token
                  expirationSeconds: 3600
        - name: scratch
          emptyDir:
            medium: Memory
            sizeLimit: 64Mi
""",
        ),
        local=False,
    ),
    DocManifest(
        "persistent-volume-claim",
        _svc(
            "with-claim",
            """\
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          command: ["python", "app.py"]
          volumeMounts:
            - name: data
              mountPath: /data
      volumes:
        - name: data
          persistentVolumeClaim:
            claimName: app-data
""",
        ),
        features={
            "kubernetes.podspec-persistent-volume-claim": "enabled",
            "kubernetes.podspec-persistent-volume-write": "enabled",
        },
        local=False,
    ),
    DocManifest(
        "scheduling",
        _svc(
            "scheduled",
            """\
      nodeSelector:
        disktype: ssd
      tolerations:
        - key: dedicated
          operator: Equal
          value: serving
          effect: NoSchedule
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions:
                  - key: kubernetes.io/arch
                    operator: In
                    values: ["amd64"]
      priorityClassName: high
      runtimeClassName: gvisor
      schedulerName: default-scheduler
      dnsPolicy: ClusterFirst
      dnsConfig:
        options:
          - name: ndots
            value: "2"
      hostAliases:
        - ip: 198.18.0.10
          hostnames: ["db.internal"]
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          command: ["python", "app.py"]
""",
        ),
        features={
            "kubernetes.podspec-nodeselector": "enabled",
            "kubernetes.podspec-tolerations": "enabled",
            "kubernetes.podspec-affinity": "enabled",
            "kubernetes.podspec-priorityclassname": "enabled",
            "kubernetes.podspec-runtimeclassname": "enabled",
            "kubernetes.podspec-schedulername": "enabled",
            "kubernetes.podspec-dnspolicy": "enabled",
            "kubernetes.podspec-dnsconfig": "enabled",
            "kubernetes.podspec-hostaliases": "enabled",
        },
    ),
    DocManifest(
        "generated-name",
        """\
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  generateName: hello-
  namespace: default
  creationTimestamp: null
spec:
  template:
    metadata:
      creationTimestamp: null
    spec:
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          command: ["python", "app.py"]
          resources: {}
""",
    ),
    DocManifest(
        "long-name",
        _svc(
            "a-service-name-that-is-exactly-sixty-three-characters-long-abcd",
            """\
      containers:
        - image: ghcr.io/knative/helloworld-go:latest
          command: ["python", "app.py"]
""",
        ),
    ),
)

BY_ID = {m.id: m for m in MANIFESTS}
