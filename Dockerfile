# CPU image of the farm: API, essence and build workers, Flower (`docker compose up`, k8s/).
# torch is pinned to the CPU build: any other version pulls a multi-GB CUDA wheel.

# The browser assets the API serves (no CDN): the studio (Vite build of web/studio) and livekit-client,
# both pinned in web/package-lock.json.
FROM node:20-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY web/studio ./studio
RUN npx --no-install vite build --config studio/vite.config.js \
 && mkdir -p /src/farm/api/static/vendor \
 && cp node_modules/livekit-client/dist/livekit-client.umd.js /src/farm/api/static/vendor/

FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
# espeak-ng: the API's local text-to-speech (POST /v1/video/generate, /v1/tts, speak).
RUN apt-get update && apt-get install -y --no-install-recommends espeak-ng && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY clients ./clients
COPY farm ./farm
COPY tasks ./tasks
COPY --from=web /src/farm/api/static ./farm/api/static
# The SDK package first (the farm depends on avatar-farm-client, which is not on PyPI).
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
 && pip install ./clients/python \
 && pip install ".[expression]"
RUN useradd --create-home --uid 1000 farm && mkdir -p /data && chown farm /data
USER farm
EXPOSE 8000 5555
CMD ["farm", "api"]
