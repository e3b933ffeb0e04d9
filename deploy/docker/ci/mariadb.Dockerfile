# Stand-in for the registry's mariadb image where no registry is reachable (CI): Debian's
# MariaDB 10.11 on the local debian:bookworm-slim, with the official image's interface:
# MARIADB_DATABASE / MARIADB_USER / MARIADB_PASSWORD / MARIADB_ROOT_PASSWORD, data in
# /var/lib/mysql, `healthcheck.sh --connect --innodb_initialized`, listening on 3306.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mariadb-server \
 && rm -rf /var/lib/apt/lists/* /var/lib/mysql/* \
 && install -d -o mysql -g mysql -m 0755 /run/mysqld \
 && chown mysql:mysql /var/lib/mysql
COPY mariadb-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
COPY mariadb-healthcheck.sh /usr/local/bin/healthcheck.sh
USER mysql
EXPOSE 3306
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["mariadbd"]
