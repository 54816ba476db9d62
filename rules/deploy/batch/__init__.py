"""``docker-workflow batch``: a file of inputs through a workflow image, resumable."""
