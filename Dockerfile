FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain ./domain
COPY infrastructure ./infrastructure
COPY graphql_api ./graphql_api
COPY jobs ./jobs
RUN pip install --no-cache-dir .
ENV VKCP_DATA_DIR=/data
VOLUME /data
EXPOSE 8000
CMD ["vkcp", "serve", "--host", "0.0.0.0", "--port", "8000"]
