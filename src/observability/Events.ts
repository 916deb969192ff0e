/**
 * The catalogue of telemetry events the library emits: one place for their names (dotted, as
 * the original's `[:foundation, component, action]` lists, where the original had one) and the
 * shapes of their measurements and metadata. Durations are milliseconds everywhere.
 *
 * Per-call successes are not events (they would cost every call an envelope); they are metrics.
 * Events mark what is worth reacting to: state changes, rejections, retries, timeouts.
 */

/** Every event name, by component. */
export const names = {
  circuitBreaker: {
    /** measurements {} · metadata { breaker, from_state, to_state } */
    stateChange: "foundation.circuit_breaker.state_change",
    /** measurements { count: 1, retry_after_ms } · metadata { breaker, state } */
    callRejected: "foundation.circuit_breaker.call_rejected"
  },
  rateLimiter: {
    /** measurements { count: 1, retry_after_ms, remaining } · metadata { limiter, key } */
    denied: "foundation.rate_limiter.denied"
  },
  retry: {
    /** measurements { attempt, delay_ms } · metadata { policy, error_category, error } */
    retry: "foundation.retry.retry",
    /** measurements { attempts } · metadata { policy, error_category, error, reason } */
    exhausted: "foundation.retry.exhausted"
  },
  bulkhead: {
    /** measurements { count: 1 } · metadata { bulkhead, max_concurrent, max_queued } */
    rejected: "foundation.bulkhead.rejected"
  },
  timeout: {
    /** measurements { timeout_ms } · metadata { timeout } */
    expired: "foundation.timeout.expired"
  },
  recovery: {
    /** measurements { count: 1 } · metadata { strategy, error_category, outcome, error } */
    handled: "foundation.error_handler.handled"
  },
  cache: {
    /** measurements { max_size, cleanup_interval_ms? } · metadata { cache, eviction, telemetry } */
    started: "foundation.cache.started",
    /** (`telemetry: "all"`) measurements {} · metadata { cache, key } */
    hit: "foundation.cache.hit",
    /** (`telemetry: "all"`) measurements {} · metadata { cache, key, reason: absent | expired } */
    miss: "foundation.cache.miss",
    /** (`telemetry: "all"`) measurements { ttl_ms? } (absent: no expiry) · metadata { cache, key } */
    put: "foundation.cache.put",
    /** (`telemetry: "all"`) measurements {} · metadata { cache, key, existed } */
    delete: "foundation.cache.delete",
    /** measurements {} · metadata { cache, key, reason: "size_limit", policy: lru | fifo } */
    evicted: "foundation.cache.evicted",
    /** measurements { count } (entries held before the clear) · metadata { cache } */
    cleared: "foundation.cache.cleared",
    /** Only when something was removed. measurements { expired_count, duration } · metadata { cache } */
    cleanup: "foundation.cache.cleanup"
  },
  resourceManager: {
    /** measurements { duration, amount, active_tokens, memory_mb, entries } · metadata { resource_manager, kind, token_id } */
    acquired: "foundation.resource_manager.acquired",
    /** measurements { duration (held, ms), amount, active_tokens, memory_mb, entries } · metadata { resource_manager, kind, token_id } */
    released: "foundation.resource_manager.released",
    /** measurements { duration, requested, used, limit } · metadata { resource_manager, kind, reason, resource } */
    denied: "foundation.resource_manager.denied",
    /** measurements { memory_ratio, entries_ratio } · metadata { resource_manager, old_state, new_state } */
    backpressureChanged: "foundation.resource_manager.backpressure_changed",
    /** measurements { duration, active_tokens, memory_mb, entries } · metadata { resource_manager } */
    cleanup: "foundation.resource_manager.cleanup"
  },
  connectionManager: {
    /** measurements { count: 1 } · metadata { pool_id, scheme, host, port, max_connections } */
    poolConfigured: "foundation.connection_manager.pool_configured",
    /** measurements { count: 1 } · metadata { pool_id } */
    poolRemoved: "foundation.connection_manager.pool_removed",
    /**
     * Only for pools with `requestEvents: true`. measurements { duration (ms), count: 1 } ·
     * metadata { pool_id, method, path, status (a number, or "error"), outcome }
     */
    request: "foundation.connection_manager.request"
  },
  taskPools: {
    /** measurements { max_concurrency, timeout_ms } · metadata { pool } */
    poolCreated: "foundation.task_pool_manager.pool_created",
    /** measurements { running, queued } · metadata { pool } */
    poolShutdown: "foundation.task_pool_manager.pool_shutdown",
    /** measurements { timeout_ms } · metadata { pool } */
    taskTimeout: "foundation.task_pool_manager.task_timeout"
  },
  batch: {
    /**
     * measurements { duration, count, success_count, error_count = count − success_count,
     * rolled_back_count, skipped_count, chunk_count } · metadata { operation, store, on_error, outcome }
     */
    batchRegister: "foundation.batch_operations.batch_register",
    /** as `batchRegister` */
    batchUpdate: "foundation.batch_operations.batch_update",
    /** as `batchRegister` */
    batchUnregister: "foundation.batch_operations.batch_unregister",
    /** measurements { duration, result_count, page_count } · metadata { store, filtered, complete } (once per stream run) */
    query: "foundation.batch_operations.query"
  },
  commandRunner: {
    /**
     * A process ended with an accepted exit code.
     * measurements { duration, exit_code, stdout_bytes, stderr_bytes } · metadata { runner, command, pid, truncated }
     */
    completed: "foundation.command_runner.completed",
    /**
     * A process ended with another exit code, or could not run.
     * measurements { duration, exit_code } (for an exit code) · metadata { runner, command, reason, error? }, reason
     * "exit_code" or "execution"
     */
    failed: "foundation.command_runner.failed",
    /** A process ran out of time and was killed. measurements { timeout_ms } · metadata { runner, command, pid }. */
    timeout: "foundation.command_runner.timeout",
    /**
     * A call was refused without spawning.
     * measurements { count: 1 } · metadata { runner, command, reason: "not_allowed" | "concurrency" }
     */
    rejected: "foundation.command_runner.rejected"
  },
  repository: {
    /** After the commit. measurements { count: 1 } · metadata { repository, key, store } */
    insert: "foundation.repository.insert",
    /** After the commit. measurements { count: 1 } · metadata { repository, key, store } */
    update: "foundation.repository.update",
    /** After the commit. measurements { count: 1 } · metadata { repository, key, store } */
    delete: "foundation.repository.delete"
  },
  supervisor: {
    /** measurements { count: 1 } · metadata { supervisor, child, reason: normal | failure | defect | interrupted, incarnation } */
    childExited: "foundation.supervisor.child_exited",
    /** measurements { count: 1 } · metadata { supervisor, child, reason (of the exit), incarnation } */
    childRestarted: "foundation.supervisor.child_restarted",
    /** measurements { count: 1 } · metadata { supervisor, child, reason: intensity | backoff_exhausted, incarnation } */
    escalated: "foundation.supervisor.escalated"
  },
  agentRegistry: {
    /** measurements { count: 1 } · metadata { registry, agent_id, capabilities, health_status, node } */
    register: "foundation.mabeam.registry.register",
    /** measurements { count: 1 } · metadata { registry, agent_id, reason: already_exists | validation, error } */
    registerFailed: "foundation.mabeam.registry.register_failed",
    /** measurements { count: 1 } · metadata { registry, agent_id, reason: explicit | stopped } */
    unregister: "foundation.mabeam.registry.unregister",
    /** measurements { count: 1 } · metadata { registry, agent_id, reason: not_found } */
    unregisterFailed: "foundation.mabeam.registry.unregister_failed",
    /** measurements { count: 1 } · metadata { registry, agent_id, old_capabilities, new_capabilities, old_health, new_health } */
    update: "foundation.mabeam.registry.update",
    /** measurements { count: 1 } · metadata { registry, agent_id, reason: not_found | validation, error? } */
    updateFailed: "foundation.mabeam.registry.update_failed",
    /** (`telemetry: "all"`) measurements { result_count } · metadata { registry, query_type: indexed | scan } */
    query: "foundation.mabeam.registry.query",
    /** measurements { count: 1, timestamp } · metadata { registry, agent_id, reason, capabilities, health_status, node } */
    agentDown: "foundation.mabeam.registry.agent_down",
    /** measurements { duration, total_count, success_count, failed_count } · metadata { registry, operation: batch_register, status } */
    batchOperation: "foundation.mabeam.registry.batch_operation"
  },
  agentMonitor: {
    /** measurements { interval_ms, timeout_ms } · metadata { monitor, agent_id } */
    started: "foundation.mabeam.agent_monitor.started",
    /** measurements { count: 1 } · metadata { monitor, agent_id, from (a health or "unknown"), to } */
    healthChanged: "foundation.mabeam.agent_monitor.health_changed",
    /** measurements { count: 1, consecutive_failures } · metadata { monitor, agent_id, reason: failure | timeout, error } */
    checkFailed: "foundation.mabeam.agent_monitor.check_failed",
    /** measurements { count: 1, checks } · metadata { monitor, agent_id, reason: unregistered | failure | defect | interrupted } */
    agentDown: "foundation.mabeam.agent_monitor.agent_down",
    /** measurements { count: 1, checks } · metadata { monitor, agent_id } */
    stopped: "foundation.mabeam.agent_monitor.stopped"
  },
  scheduler: {
    /** measurements { count: 1 } · metadata { scheduler, agent_id, schedule_id, action, timing, replaced } */
    scheduled: "foundation.mabeam.scheduler.scheduled",
    /** measurements { count: 1, runs } · metadata { scheduler, agent_id, schedule_id, reason: explicit | agent | completed } */
    unscheduled: "foundation.mabeam.scheduler.unscheduled",
    /** measurements { count: 1 } · metadata { scheduler, agent_id, schedule_id, timing } */
    intervalUpdated: "foundation.mabeam.scheduler.interval_updated",
    /** measurements { count: 1, failures } · metadata { scheduler, agent_id, schedule_id, action, trigger: timer | run_now, error } */
    deliveryFailed: "foundation.mabeam.scheduler.delivery_failed",
    /** measurements { schedules } · metadata { scheduler, agent_id, reason: unregistered | failure | defect | interrupted | stopped | replaced } */
    agentEnded: "foundation.mabeam.scheduler.agent_ended"
  },
  taskAgent: {
    /** measurements { count: 1 } · metadata { agent_id, task_id, task_type, priority } */
    started: "foundation.jido_system.task.started",
    /** measurements { duration, count: 1 } · metadata { agent_id, task_id, task_type, result: "success" } */
    completed: "foundation.jido_system.task.completed",
    /** measurements { duration, count: 1 } · metadata { agent_id, task_id, task_type, reason (the error's tag), error } */
    failed: "foundation.jido_system.task.failed",
    /** measurements { error_count, queue_size } · metadata { agent_id, reason } */
    paused: "foundation.jido.agent.task_processing_paused",
    /** measurements { error_count, queue_size } · metadata { agent_id } */
    resumed: "foundation.jido.agent.task_processing_resumed"
  },
  discovery: {
    /** measurements { items, assigned, unassigned, agents, candidates } · metadata { operation: distribute | dispatch, strategy, capabilities } */
    distributed: "foundation.mabeam.discovery.distributed",
    /** measurements { count: 1, items } · metadata { operation: distribute | dispatch, capabilities, health, node } */
    noCapableAgents: "foundation.mabeam.discovery.no_capable_agents",
    /** measurements { agents, items, succeeded, failed, duration } · metadata { definition, action } */
    dispatched: "foundation.mabeam.discovery.dispatched"
  },
  consensus: {
    /** measurements { participants, timeout_ms } · metadata { consensus, round_id, rule } */
    started: "foundation.mabeam.consensus.started",
    /** measurements { duration, yes, no, abstain } · metadata { consensus, round_id, rule, decision, reason } */
    completed: "foundation.mabeam.consensus.completed"
  },
  election: {
    /** measurements { term } · metadata { election, capability, leader (id or null), previous (id or null), reason } */
    leaderChanged: "foundation.mabeam.election.leader_changed"
  },
  barrier: {
    /** measurements { parties, generation } · metadata { barrier } */
    tripped: "foundation.mabeam.barrier.tripped",
    /** measurements { waiting, generation } · metadata { barrier, reason: timeout | interrupted | reset | closed | removed } */
    broken: "foundation.mabeam.barrier.broken",
    /** measurements { idle_ms } · metadata { barriers, barrier, reason: idle | explicit } */
    removed: "foundation.mabeam.barrier.removed"
  },
  lock: {
    /** measurements { count: 1, held_ms } · metadata { locks, lock, holder, token, next_holder } */
    leaseExpired: "foundation.mabeam.lock.lease_expired",
    /** measurements { count: 1, timeout_ms, waiters } · metadata { locks, lock, holder, held_by } */
    acquireTimeout: "foundation.mabeam.lock.acquire_timeout"
  },
  healthChecker: {
    /** `checkAll` finished. measurements { duration (ms), service_count } · metadata { checker, result } */
    healthCheck: "foundation.service_integration.health_check",
    /** A check's status changed. measurements {} · metadata { checker, check, from, to, breaker } */
    statusChanged: "foundation.service_integration.health_status_changed"
  },
  dependencyManager: {
    /** measurements { duration (ms) } · metadata { manager, service } */
    serviceStarted: "foundation.service_integration.service_started",
    /** measurements { duration (ms) } · metadata { manager, service } */
    serviceStopped: "foundation.service_integration.service_stopped",
    /** measurements { duration (ms) } · metadata { manager, service, phase: start | stop, error } */
    serviceFailed: "foundation.service_integration.service_failed"
  },
  contracts: {
    /** measurements { count } · metadata { contract, operation, kind: implementation | output, reason } */
    violation: "foundation.service_integration.contract_violation"
  },
  study: {
    /** measurements { number, value?, duration, attempts } · metadata { study, state, error? } */
    trialEnded: "foundation.ml.study.trial_ended",
    /** measurements { number, value } · metadata { study, params } */
    bestImproved: "foundation.ml.study.best_improved"
  },
  cqrs: {
    /** measurements {} · metadata { command, params (redacted) } */
    commandStarted: "foundation.cqrs.command.started",
    /** measurements { duration (ms), duration_us } · metadata { command, success, error? } */
    commandCompleted: "foundation.cqrs.command.completed",
    /** measurements { duration (ms), duration_us } · metadata { query, cache_hit, coalesced, success, error? } */
    queryExecuted: "foundation.cqrs.query.executed"
  }
} as const

/** Every event name, flat. */
export const all: ReadonlyArray<string> = Object.values(names).flatMap((group) => Object.values(group))
