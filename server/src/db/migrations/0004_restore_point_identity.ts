import { MysqlAdapter, PostgresAdapter, sql, type Kysely } from 'kysely';

/**
 * A restore point is identified by (VM, repository, epoch): the same epoch may exist in
 * two repositories of one VM (its policy moved it to another storage), never twice in
 * one. 0001's unique (vm_id, epoch) is replaced by unique (vm_id, repository, epoch), so a
 * reconcile of one repository can add what it finds there. Rows that already repeat a
 * (vm_id, repository, epoch) are reduced to one first (the one Backroll made, else the
 * oldest). Portable: SQLite rebuilds the table (it cannot drop a table constraint); on
 * MariaDB the index covers the first 512 characters of the repository path (utf8mb4 keys
 * are limited to 3072 bytes), more than any storage path.
 */
const OLD = 'restore_points_vm_epoch';
const NEW = 'restore_points_vm_repository_epoch';

type Dialect = 'sqlite' | 'postgres' | 'mysql';

function dialectOf(db: Kysely<unknown>): Dialect {
  const adapter = db.getExecutor().adapter;
  if (adapter instanceof PostgresAdapter) return 'postgres';
  if (adapter instanceof MysqlAdapter) return 'mysql';
  return 'sqlite';
}

interface Row {
  id: string;
  vm_id: string;
  repository: string;
  epoch: number | string;
  source: string | null;
  created_at: string;
}

/** Keeps one row per (vm_id, repository, epoch): Backroll's own, else the oldest, else the smallest id. */
export async function dedupeRestorePoints(db: Kysely<unknown>): Promise<string[]> {
  const groups = await sql<{ vm_id: string; repository: string; epoch: number | string }>`
    select vm_id, repository, epoch from restore_points group by vm_id, repository, epoch having count(*) > 1`.execute(db);
  const doomed: string[] = [];
  for (const g of groups.rows) {
    const rows = (
      await sql<Row>`select id, vm_id, repository, epoch, source, created_at from restore_points
        where vm_id = ${g.vm_id} and repository = ${g.repository} and epoch = ${g.epoch}`.execute(db)
    ).rows;
    const rank = (r: Row) => [(r.source ?? 'backroll') === 'backroll' ? 0 : 1, r.created_at, r.id] as const;
    rows.sort((a, b) => {
      const [x, y] = [rank(a), rank(b)];
      return x[0] - y[0] || x[1].localeCompare(y[1]) || x[2].localeCompare(y[2]);
    });
    doomed.push(...rows.slice(1).map((r) => r.id));
  }
  for (let i = 0; i < doomed.length; i += 200) {
    const ids = doomed.slice(i, i + 200);
    await sql`delete from restore_points where id in (${sql.join(ids)})`.execute(db);
  }
  return doomed;
}

export async function up(db: Kysely<unknown>): Promise<void> {
  await dedupeRestorePoints(db);
  switch (dialectOf(db)) {
    case 'postgres':
      await db.schema.createIndex(NEW).on('restore_points').columns(['vm_id', 'repository', 'epoch']).unique().execute();
      await sql`alter table restore_points drop constraint if exists ${sql.id(OLD)}`.execute(db);
      return;
    case 'mysql': {
      // The new index first: it starts with vm_id, so the foreign key keeps an index.
      await sql`create unique index ${sql.id(NEW)} on restore_points (vm_id, repository(512), epoch)`.execute(db);
      const old = await sql`show index from restore_points where Key_name = ${OLD}`.execute(db);
      if (old.rows.length > 0) await sql`alter table restore_points drop index ${sql.id(OLD)}`.execute(db);
      return;
    }
    case 'sqlite': {
      const table = await sql<{ sql: string }>`select sql from sqlite_master where type = 'table' and name = 'restore_points'`.execute(db);
      const ddl = table.rows[0]?.sql ?? '';
      const without = ddl.replace(/,\s*constraint\s+"restore_points_vm_epoch"\s+unique\s*\("vm_id",\s*"epoch"\)/i, '');
      if (without !== ddl) {
        await sql.raw(without.replace(/^CREATE TABLE "restore_points"/i, 'CREATE TABLE "restore_points_0004"')).execute(db);
        await sql`insert into restore_points_0004 select * from restore_points`.execute(db);
        await sql`drop table restore_points`.execute(db);
        await sql`alter table restore_points_0004 rename to restore_points`.execute(db);
      }
      await db.schema.createIndex(NEW).on('restore_points').columns(['vm_id', 'repository', 'epoch']).unique().execute();
      return;
    }
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // Back to 0001's rule; fails (as it should) when one VM has an epoch in two repositories.
  switch (dialectOf(db)) {
    case 'postgres':
      await sql`alter table restore_points add constraint ${sql.id(OLD)} unique (vm_id, epoch)`.execute(db);
      await db.schema.dropIndex(NEW).execute();
      return;
    case 'mysql':
      await sql`create unique index ${sql.id(OLD)} on restore_points (vm_id, epoch)`.execute(db);
      await sql`alter table restore_points drop index ${sql.id(NEW)}`.execute(db);
      return;
    case 'sqlite':
      await db.schema.dropIndex(NEW).execute();
      await db.schema.createIndex(OLD).on('restore_points').columns(['vm_id', 'epoch']).unique().execute();
      return;
  }
}
