"""Running built workflows: a local run, a service, a batch (local or on Swarm), Kubernetes
manifests."""
