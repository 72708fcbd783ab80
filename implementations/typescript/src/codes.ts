// Canonical upper-case gRPC status code names, indexed by code number
// (Connect's Code enum uses the same numbers with camel-case names).
export const CODE_NAMES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
] as const;

export function codeName(code: number): string {
  return CODE_NAMES[code] ?? `CODE_${code}`;
}

/** The code number of a canonical name, or undefined. */
export function codeFromName(name: string): number | undefined {
  const i = (CODE_NAMES as readonly string[]).indexOf(name);
  return i < 0 ? undefined : i;
}
