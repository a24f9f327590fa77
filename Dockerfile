# inkwell: the HTTP service on port 9000, tesseract (eng, fra) and poppler inside.
# Debian's Python 3.11 in a venv: a base that can be built and checked anywhere (see README).
FROM debian:bookworm-slim AS base
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3 python3-venv \
      tesseract-ocr tesseract-ocr-eng tesseract-ocr-fra \
      poppler-utils \
 && rm -rf /var/lib/apt/lists/*

# Dependencies from the lock file only (main group), in a layer cached before the source.
FROM base AS deps
RUN python3 -m venv /opt/poetry \
 && /opt/poetry/bin/pip install "poetry==2.5.1" "poetry-plugin-export==1.10.1"
WORKDIR /build
COPY pyproject.toml poetry.lock ./
RUN /opt/poetry/bin/poetry export --only main --format requirements.txt --output requirements.txt \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes -r requirements.txt

FROM base
COPY --from=deps /opt/venv /opt/venv
RUN useradd --create-home --uid 1000 inkwell \
 && mkdir -p /data /models /corrections \
 && chown inkwell:inkwell /data /models /corrections
WORKDIR /srv/inkwell
COPY app ./app
COPY models/default ./models/default
COPY samples ./samples
# bytecode compiled once at build (PYTHONDONTWRITEBYTECODE: the container never writes it itself)
RUN /opt/venv/bin/python -m compileall -q app /opt/venv/lib
ENV PATH=/opt/venv/bin:$PATH \
    OMP_THREAD_LIMIT=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    INKWELL_DATA_DIR=/data \
    INKWELL_MODELS_DIR=/models \
    INKWELL_CORRECTIONS_DIR=/corrections \
    INKWELL_DEFAULT_MODEL_DIR=/srv/inkwell/models/default \
    INKWELL_CACHE_DIR=/models/.cache
USER inkwell
EXPOSE 9000
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9000/health', timeout=8).status != 200)"]
CMD ["python", "-m", "app", "serve", "--host", "0.0.0.0", "--port", "9000"]
