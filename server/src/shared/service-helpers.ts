import { conflict, notFound } from '../errors.js';
import { isUniqueViolation } from '../db/errors.js';

/** Runs a write whose only unique column is `name`; a duplicate becomes `<RESOURCE>.NAME_TAKEN`. */
export async function uniqueName<T>(resource: string, name: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    if (isUniqueViolation(err)) {
      throw conflict(`${resource.toUpperCase()}.NAME_TAKEN`, `a ${resource} named "${name}" already exists; choose another name`, { name });
    }
    throw err;
  }
}

export function found<T>(value: T | undefined, resource: string, id: string): T {
  if (value === undefined) {
    throw notFound(`${resource.toUpperCase()}.NOT_FOUND`, `no ${resource} with id ${id}`, { id });
  }
  return value;
}

export interface Reference {
  type: string;
  id: string;
  name: string;
}

/** A resource still referenced cannot be deleted: 409 listing what references it. */
export function assertUnreferenced(resource: string, name: string, refs: Reference[]): void {
  if (refs.length === 0) return;
  const listed = refs.map((r) => `${r.type} "${r.name}"`).join(', ');
  throw conflict(`${resource.toUpperCase()}.IN_USE`, `${resource} "${name}" is still used by ${listed}; change or delete those first`, {
    referencedBy: refs,
  });
}
