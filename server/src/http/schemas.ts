import { Type, type Static, type TProperties, type TSchema } from '@sinclair/typebox';

/** Shared schema pieces for the native API. */
export const Uuid = Type.String({ format: 'uuid', description: 'UUID' });
export const IdParams = Type.Object({ id: Uuid }, { additionalProperties: false });
export type IdParams = Static<typeof IdParams>;

const pageProps = {
  limit: Type.Integer({ minimum: 1, maximum: 500, default: 50, description: 'page size' }),
  offset: Type.Integer({ minimum: 0, default: 0, description: 'items to skip' }),
};
export const PageQuery = Type.Object(pageProps, { additionalProperties: false });
export type PageQuery = Static<typeof PageQuery>;

/** Query string of a list endpoint: paging plus the given filters, nothing else. */
export const listQuery = <P extends TProperties>(filters: P) => Type.Object({ ...pageProps, ...filters }, { additionalProperties: false });

export const Page = <T extends TSchema>(item: T) =>
  Type.Object({
    items: Type.Array(item),
    total: Type.Integer({ description: 'items in all pages' }),
    limit: Type.Integer(),
    offset: Type.Integer(),
  });

export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    code: Type.String({ description: 'stable error code, e.g. STORAGE.PATH_NOT_WRITABLE' }),
    detail: Type.String({ description: 'what went wrong and what to do' }),
    instance: Type.Optional(Type.String()),
    requestId: Type.Optional(Type.String()),
  },
  { additionalProperties: true, $id: 'Problem' },
);

/** Error responses every authenticated route may give, for the OpenAPI document. */
export const errorResponses = (...statuses: number[]) =>
  Object.fromEntries(
    [400, 401, 403, ...statuses].map((s) => [s, { ...Type.Ref('Problem'), description: 'application/problem+json' }]),
  );

export const Timestamps = {
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
};

/** A unique human name: 1–255 characters, no leading or trailing spaces. */
export const Name = Type.String({ minLength: 1, maxLength: 255, pattern: '^\\S(.*\\S)?$', description: 'unique name, no leading/trailing spaces' });

/**
 * Body of a PATCH: any subset of the create body's fields, at least one. The create body's
 * defaults are dropped: the validator would otherwise fill them in for the fields a PATCH
 * leaves out (renaming a host would reset its SSH port and user).
 */
export const PatchOf = <T extends TSchema>(create: T) => {
  const patch = Type.Partial(create, { additionalProperties: false, minProperties: 1 });
  const props = (patch as unknown as { properties?: Record<string, TSchema> }).properties ?? {};
  for (const [key, schema] of Object.entries(props)) {
    // A copy: the property schemas may be shared with the create body, which keeps its defaults.
    const { default: _dropped, ...rest } = schema;
    props[key] = rest as TSchema;
  }
  return patch;
};

export const NoContent = { 204: Type.Null({ description: 'deleted' }) };
