/** The effective uid of this process; 0 where there is none (Windows). */
export function euid(): number {
  return process.geteuid?.() ?? 0;
}
