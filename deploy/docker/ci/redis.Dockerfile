# Stand-in for the registry's redis image where no registry is reachable (CI): Debian's
# redis-server on the local debian:bookworm-slim, with the official image's interface: data in
# /data, redis-cli on PATH, `redis-server …` as the command, reachable from other containers.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o redis -g redis -m 0750 /data
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
USER redis
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
