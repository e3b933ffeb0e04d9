// Maps a problem+json answer onto form fields: `errors[].path` ("body/retention/daily")
// becomes the field key "retention.daily"; what matches no field is a general error.
import { computed, reactive } from 'vue';
import { ApiError } from '../api/client';

export function fieldKey(path: string): string {
  return path
    .replace(/^(body|querystring|params)(\/|$)/, '')
    .split('/')
    .filter(Boolean)
    .join('.');
}

export function useFormErrors() {
  const state = reactive({ fields: {} as Record<string, string>, general: '' as string, code: '' as string });

  function clear(): void {
    state.fields = {};
    state.general = '';
    state.code = '';
  }

  /**
   * Takes any caught error. Field errors go to their fields; the rest becomes the general
   * message. `fieldFor` maps codes without a path (e.g. STORAGE.NAME_TAKEN → "name").
   */
  function set(err: unknown, fieldFor: Record<string, string> = {}): void {
    clear();
    if (!(err instanceof ApiError)) {
      state.general = err instanceof Error ? err.message : String(err);
      return;
    }
    state.code = err.code;
    const unplaced: string[] = [];
    for (const e of err.errors) {
      const key = fieldKey(e.path);
      if (key) state.fields[key] = state.fields[key] ? `${state.fields[key]}; ${e.message}` : e.message;
      else unplaced.push(e.message);
    }
    const byCode = fieldFor[err.code] ?? (/\.NAME_TAKEN$/.test(err.code) ? 'name' : undefined);
    if (byCode) state.fields[byCode] = err.detail;
    else if (err.errors.length === 0 || unplaced.length > 0) state.general = [err.detail, ...unplaced].filter(Boolean).join(' — ');
  }

  return {
    state,
    set,
    clear,
    /** For n-form-item: `:feedback="errs.feedback('name')" :validation-status="errs.status('name')"`. */
    feedback: (field: string) => state.fields[field] ?? undefined,
    status: (field: string) => (state.fields[field] ? ('error' as const) : undefined),
    hasErrors: computed(() => state.general !== '' || Object.keys(state.fields).length > 0),
  };
}
export type FormErrors = ReturnType<typeof useFormErrors>;
