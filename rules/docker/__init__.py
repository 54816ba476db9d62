"""The Docker engine: the client, the image store, buildx, containers, and the Dockerfiles and
scripts of the compile and image stages (``build/``)."""
