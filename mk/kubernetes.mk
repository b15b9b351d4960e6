# Kubernetes: images, manifests and their checks (docs/kubernetes.md). Included by the Makefile.
K8S_SERVICES := auth gateway converter notification
IMAGE_PREFIX ?= mp3converter/
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
# or manifests/overlays/minikube-keda, manifests/overlays/minikube-rabbitmq-cluster (docs/kubernetes.md)
K8S_OVERLAY ?= manifests/overlays/minikube
K8S_PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)

.PHONY: images podman-images print-images secrets deploy undeploy test-manifests test-podman

images: ## build the four images into minikube (tag: version in pyproject.toml)
	@bash scripts/vendor-js.sh
	@for s in $(K8S_SERVICES); do \
	  echo "building $(IMAGE_PREFIX)$$s:$(IMAGE_TAG)"; \
	  minikube image build -t $(IMAGE_PREFIX)$$s:$(IMAGE_TAG) --build-opt=build-arg=SERVICE=$$s . \
	    || exit 1; \
	done

podman-images: ## build the four images with podman on a Debian stand-in base
	IMAGE_PREFIX=$(IMAGE_PREFIX) IMAGE_TAG=$(IMAGE_TAG) bash scripts/podman-images.sh

print-images:
	@for s in $(K8S_SERVICES); do echo "$(IMAGE_PREFIX)$$s:$(IMAGE_TAG)"; done

secrets: ## random secrets/*.env for the minikube overlay (existing ones are kept)
	$(K8S_PYTHON) scripts/k8s_secrets.py

K8S_INIT_JOBS := auth-init-db mongodb-init-users mysql-init-users
K8S_INGRESS_SETTINGS ?= manifests/overlays/minikube/ingress-nginx

deploy: ## kubectl apply -k the minikube overlay (after make secrets images)
	$(K8S_PYTHON) scripts/k8s_secrets.py
	kubectl apply -k $(K8S_INGRESS_SETTINGS)
	@# the init Jobs are idempotent: delete the finished ones so that this apply runs them again
	kubectl -n mp3converter delete job $(K8S_INIT_JOBS) --ignore-not-found
	kubectl apply -k $(K8S_OVERLAY)
	kubectl -n mp3converter rollout restart deployment auth gateway converter notification

undeploy: ## delete what deploy created; the namespace goes, volumes included
	kubectl delete -k $(K8S_OVERLAY) --ignore-not-found

test-manifests: ## offline checks: kustomize, kubernetes-validate, checkov, hadolint, consistency
	$(K8S_PYTHON) -m pytest -m manifests tests/manifests

test-podman: ## build the images with podman and run the podman overlay end to end
	$(K8S_PYTHON) -m pytest -m podman tests/manifests
