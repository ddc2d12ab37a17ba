/** Option helpers the programs share. */

/** Repeatable options: each use adds to the list (not variadic: that would swallow a subcommand's name). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
