/* The stdio protocol loop (native/PROTOCOL.md): JSON lines in, JSON lines out. */
#ifndef FC_PROTOCOL_H
#define FC_PROTOCOL_H

#include <stddef.h>

#include "engine.h"

#define FC_PROTOCOL_VERSION 1

/*
 * Print `ready`, then serve requests from in_fd until shutdown or EOF. While a prompt is evaluated, a `progress`
 * line goes out at most every progress_ms (0: after every layer). Returns the process exit code.
 */
int fc_protocol_run(struct fc_engine * e, size_t snapshot_budget_bytes, int in_fd, double progress_ms);

#endif
