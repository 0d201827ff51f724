# CPU image of the farm: API, essence and build workers, Flower (`docker compose up`, k8s/).
# torch is pinned to the CPU build: any other version pulls a multi-GB CUDA wheel.
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
# espeak-ng: the API's local text-to-speech (POST /v1/video/generate, /v1/tts, speak).
RUN apt-get update && apt-get install -y --no-install-recommends espeak-ng && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY farm ./farm
COPY tasks ./tasks
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
 && pip install ".[expression]"
RUN useradd --create-home --uid 1000 farm && mkdir -p /data && chown farm /data
USER farm
EXPOSE 8000 5555
CMD ["farm", "api"]
