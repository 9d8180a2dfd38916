FROM python:3.11-slim
WORKDIR /app
# The versions the suite passed with, not whatever is newest on the day of the build.
COPY constraints.txt pyproject.toml README.md ./
COPY domain ./domain
COPY infrastructure ./infrastructure
COPY graphql_api ./graphql_api
COPY jobs ./jobs
COPY entrypoints ./entrypoints
COPY bootstrap.py ./
RUN pip install --no-cache-dir --constraint constraints.txt . \
    && useradd --system --uid 10001 --no-create-home --home-dir /nonexistent vkcp \
    && mkdir -p /data && chown vkcp /data
ENV VKCP_DATA_DIR=/data
VOLUME /data
# Nothing here needs root: the service writes only to /data.
USER vkcp
EXPOSE 8000
CMD ["vkcp", "serve", "--host", "0.0.0.0", "--port", "8000"]
