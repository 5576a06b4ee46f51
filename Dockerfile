# One image for every SynapseOps process (api, worker, sandbox, one-shot migrate / topics):
# the compose file picks the process with the command, e.g. `synapseops worker`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SYNAPSEOPS_DATA_DIR=/data

WORKDIR /app

# Dependencies first (pyproject only), so a code change does not reinstall them all.
COPY pyproject.toml setup.py ./
RUN python -c "import tomllib; \
print(chr(10).join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
    > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

COPY synapseops ./synapseops
COPY streams ./streams
COPY topics ./topics
COPY schemas ./schemas
COPY sinks ./sinks
COPY api ./api
COPY sandbox ./sandbox
# A C compiler only while the loader's transcoder (setup.py, Cython) is built, then removed.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-deps . \
    && cd /tmp && python -c "import streams.aggregation._transcode" && cd /app \
    && apt-get purge -y gcc libc6-dev && apt-get autoremove -y && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data synapseops \
    && mkdir -p /data \
    && chown synapseops /data

USER synapseops
ENTRYPOINT ["synapseops"]
CMD ["worker"]
