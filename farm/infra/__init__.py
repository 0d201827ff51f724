"""Infrastructure adapters: Redis connections and the embedded server, blobs, pub/sub, media
decoding, speech synthesis, logs, backoff and the local process supervisor.
"""
