import type { SelectQueryBuilder } from 'kysely';
import type { Database } from './schema.js';

export interface PageRequest {
  limit: number;
  offset: number;
}
export interface PageResult<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

/**
 * Runs a filtered query as one page plus its total. The caller passes the query
 * without ordering; pages are ordered by `orderBy` then id for a stable order.
 */
export async function fetchPage<TB extends keyof Database, Row, T>(
  query: SelectQueryBuilder<Database, TB, object>,
  page: PageRequest,
  orderBy: string,
  map: (row: Row) => T,
): Promise<PageResult<T>> {
  const countRow = await query
    .select((eb) => eb.fn.countAll<number | string>().as('n'))
    .executeTakeFirst();
  const rows = await query
    .selectAll()
    // Dynamic column names are ours (not user input): see callers.
    .orderBy(orderBy as never)
    .orderBy('id' as never)
    .limit(page.limit)
    .offset(page.offset)
    .execute();
  return { items: (rows as Row[]).map(map), total: Number(countRow?.n ?? 0), limit: page.limit, offset: page.offset };
}
