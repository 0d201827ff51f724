"""The render worker process: WorkerRuntime core, its middleware (metrics, memory ceiling,
liveness, tracing), health endpoint and the Redis-backed composition root.
"""
