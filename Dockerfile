# One image for the server and the workers.  CPU PyTorch by default; the GPU worker service
# builds with TORCH_INDEX pointing at a CUDA wheel index.
FROM python:3.11-slim
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
WORKDIR /app
COPY pyproject.toml README.md ./
COPY server server
COPY worker worker
COPY migrations migrations
COPY frontend frontend
RUN pip install --no-cache-dir --extra-index-url "$TORCH_INDEX" -e .
# Reachable from outside the container, so tokens are required (docs/security.md): create the
# first one with `observatory token create --name admin --scope admin` against the same database.
ENV OBS_DATA_DIR=/data OBS_HOST=0.0.0.0 OBS_AUTH=required
EXPOSE 8000
CMD ["observatory", "serve"]
