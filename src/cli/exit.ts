// Exit codes of every command, named once.
export const EXIT = {
  ok: 0,
  /** The command ran and found a problem (a failed build, a doctor error, no usable toolchain). */
  failure: 1,
  /** Bad command line. */
  usage: 2,
  /** Invalid configuration (sysexits EX_CONFIG; the unit's RestartPreventExitStatus). */
  config: 78,
} as const;
