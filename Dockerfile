# One image for every Confide service (compose.yaml picks the command).
FROM python:3.12-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --system --create-home --uid 10001 confide
WORKDIR /app
COPY requirements/ requirements/
RUN pip install --no-cache-dir --require-hashes -r requirements/dev.txt
COPY . .
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e .
USER confide
ENV CONFIDE_ENV=production CONFIDE_DATA_DIR=/tmp/confide PORT=8080
EXPOSE 8080
CMD ["python", "-m", "webapp"]
