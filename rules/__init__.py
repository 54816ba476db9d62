"""The build side of docker-workflow, in packages by job (docs/ARCHITECTURE.md), top down:
``cli`` (the command line), ``deploy`` (running built workflows), ``graph`` (the doit build
graph), ``stages`` (analyze, shake, lock, render, compile, image: each a function of files),
``files`` (the user's workflow and tool files) and ``docker`` (the engine); ``errors``,
``console``, ``fsutil``, ``paths`` and ``platforms`` stand under all of them.
"""
