# One image for every Confide service (compose.yaml picks the command).
# It holds what production runs and nothing else: the runtime lock (requirements/main.txt: web,
# workers, beat, Flower, and setuptools to build the wheel) and Confide's own wheel. Never the
# dev lock (tests, browsers, lint), nor the source tree.
FROM python:3.12-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# libmagic1: attachments are identified by their content (python-magic, docs/attachments.md).
RUN apt-get update && apt-get install -y --no-install-recommends libmagic1 \
    && rm -rf /var/lib/apt/lists/*
COPY requirements/main.txt /tmp/main.txt
RUN pip install --no-cache-dir --require-hashes -r /tmp/main.txt && rm /tmp/main.txt

FROM runtime AS wheel
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

FROM runtime
RUN useradd --system --create-home --uid 10001 confide
WORKDIR /app
# Not editable: the wheel is installed into /app rather than site-packages, because the code
# finds templates/, migrations/ and translations/ beside its packages.
COPY --from=wheel /wheels/ /tmp/wheels/
RUN pip install --no-cache-dir --no-deps --target /app /tmp/wheels/*.whl && rm -r /tmp/wheels
COPY templates/ templates/
COPY migrations/ migrations/
COPY translations/ translations/
USER confide
ENV PYTHONPATH=/app PATH=/app/bin:$PATH
ENV CONFIDE_ENV=production CONFIDE_DATA_DIR=/tmp/confide PORT=8080
EXPOSE 8080
CMD ["python", "-m", "webapp"]
