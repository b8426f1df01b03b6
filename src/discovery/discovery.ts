import os from 'node:os';
import path from 'node:path';
import { Counter, Gauge } from 'prom-client';
import { packageVersion as version } from '../config/package.js';
import type { AppContext, UsageView } from '../context.js';
import type { Subsystem, SubsystemHealth } from '../lifecycle.js';
import type { Logger } from '../log/logger.js';
import { BandwidthMeter } from './bandwidth.js';
import { turnUrisFor } from '../util/addresses.js';
import { nodeNameFor, restAddrFor } from './identity.js';
import { CounterError, defaultRouteInterface, readInterfaceCounters } from './nic-counters.js';
import type { HostPayload } from './payload.js';
import { NodePublisher } from './publisher.js';
import { ZkSession } from './zk-session.js';

/** What discovery reads from other parts (wired by the composition root). */
export interface DiscoveryDeps {
  /** The HTTP API's bound address (known once it listens). */
  httpAddress(): { host: string; port: number };
  /** Open allocations, published with the node; null when stats is off. */
  usage: UsageView | null;
}

/**
 * Publishes this host's free bandwidth in an ephemeral ZooKeeper node while turnserver serves.
 * start() never waits for ZooKeeper: the session connects in the background and /health shows
 * how far it got. stop() withdraws the node first (the app stops discovery before turnserver),
 * then waits `drainMs` so signalling servers see the delete before the host stops answering.
 */
export class Discovery implements Subsystem {
  readonly name = 'discovery';
  private readonly log: Logger;
  private readonly session: ZkSession;
  private readonly publisher: NodePublisher;
  private readonly meter: BandwidthMeter;
  private readonly nodePath: string;
  private iface: string | null = null;
  private counterError: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private sampling = false;
  private stopping: Promise<void> | null = null;
  private started = false;
  private held = false;
  private readonly onReady = () => void this.publisher.setWanted(!this.stopping && !this.held, 'turnserver-ready');
  private readonly onExit = () => void this.publisher.setWanted(false, 'turnserver-exit');

  constructor(
    private readonly ctx: AppContext,
    private readonly deps: DiscoveryDeps,
  ) {
    const { config } = ctx;
    this.log = ctx.logger.child({ component: 'discovery' });
    this.nodePath = path.posix.join(config.zookeeper.path, nodeNameFor(config, os.hostname()));
    this.meter = new BandwidthMeter(config.discovery.capacityMbps);
    this.session = new ZkSession({
      connect: config.zookeeper.connect as string,
      sessionTimeoutMs: config.zookeeper.sessionTimeoutMs,
      logger: this.log,
      auth: config.zookeeper.auth,
    });
    this.publisher = new NodePublisher({
      session: this.session,
      nodePath: this.nodePath,
      logger: this.log,
      payload: () => this.payload(),
    });
    this.session.on('connected', () => {
      this.publisher.markDirty();
      void this.publisher.sync('zk-connected');
    });
    this.registerMetrics();
  }

  private payload(): HostPayload {
    const { config } = this.ctx;
    const figures = this.meter.figures;
    const restAddr = restAddrFor(this.deps.httpAddress(), config, os.hostname());
    return {
      freeTraffic: figures.freeTraffic,
      restAddr,
      restUrl: `${config.http.tls ? 'https' : 'http'}://${restAddr}`,
      turnUris: turnUrisFor(config, os.hostname()),
      rxMbps: figures.rxMbps,
      txMbps: figures.txMbps,
      capacityMbps: config.discovery.capacityMbps,
      allocations: this.allocations(),
      serving: true,
      updatedAt: new Date(this.ctx.now()).toISOString(),
      version,
    };
  }

  /** Open allocations from the stats subsystem; null when it is off or cannot say. */
  private allocations(): number | null {
    try {
      return this.deps.usage?.openAllocationCount() ?? null;
    } catch {
      return null;
    }
  }

  async start(): Promise<void> {
    this.started = true;
    const d = this.ctx.config.discovery;
    this.session.start();
    await this.resolveInterface();
    this.ctx.supervisor.on('ready', this.onReady);
    this.ctx.supervisor.on('exit', this.onExit);
    await this.sample();
    this.timer = setInterval(() => void this.sample(), d.intervalSec * 1000);
    if (this.ctx.supervisor.isReady) void this.publisher.setWanted(true, 'turnserver-ready');
    this.log.info(
      {
        event: 'discovery-started',
        node: this.nodePath,
        connect: this.ctx.config.zookeeper.connect,
        interface: this.iface,
      },
      'discovery started',
    );
  }

  private async resolveInterface(): Promise<void> {
    const d = this.ctx.config.discovery;
    if (d.interface) {
      this.iface = d.interface;
      return;
    }
    let problem: string | null = null;
    try {
      this.iface = await defaultRouteInterface(d.procNetRoute);
      if (!this.iface) problem = `no default route in ${d.procNetRoute}: set discovery.interface`;
    } catch (err) {
      problem = (err as Error).message;
    }
    if (this.iface) {
      this.log.info(
        { event: 'interface', interface: this.iface, source: d.procNetRoute },
        `measuring interface ${this.iface} (default route)`,
      );
    } else if (problem !== this.counterError) {
      this.log.error({ event: 'counters-failed', err: problem }, problem ?? '');
    }
    this.counterError = problem;
  }

  /** One reading: new figures are written at once; a failed or skipped reading writes nothing. */
  private async sample(): Promise<void> {
    if (this.sampling || this.stopping) return;
    this.sampling = true;
    try {
      if (!this.iface) await this.resolveInterface();
      if (this.iface) this.measure(this.iface);
    } catch (err) {
      // Anything unexpected is reported like a missing interface: a reading never crashes the monitor.
      const message =
        err instanceof CounterError
          ? err.message
          : `reading counters of ${this.iface} failed: ${(err as Error).message}`;
      if (this.counterError !== message)
        this.log.error({ event: 'counters-failed', interface: this.iface, err: message }, message);
      this.counterError = message;
      // Next good reading starts a fresh interval: a rate across the gap would be meaningless.
      this.meter.resetBaseline();
    } finally {
      this.sampling = false;
    }
    await this.publisher.sync('interval');
  }

  /** Read the counters (throws CounterError) and feed the meter; figures changed → write. */
  private measure(iface: string): void {
    const result = this.meter.add(readInterfaceCounters(this.ctx.config.discovery.sysClassNet, iface));
    if (this.counterError)
      this.log.info({ event: 'counters-recovered', interface: iface }, 'interface counters readable again');
    this.counterError = null;
    if (result.kind === 'skipped') {
      this.log.warn(
        { event: 'counter-skipped', reason: result.reason, interface: iface },
        `interval skipped: ${result.reason}`,
      );
    } else {
      this.publisher.markDirty();
    }
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.timer) clearInterval(this.timer);
      this.ctx.supervisor.off('ready', this.onReady);
      this.ctx.supervisor.off('exit', this.onExit);
      if (!this.started) return;
      // A node we created may have been seen by signalling servers: they must see it go while
      // turnserver still answers, whether our delete is confirmed now or after a reconnect.
      const hadNode = this.publisher.hasNode;
      const removalsBefore = this.publisher.removals;
      // Bounded: a ZooKeeper that is down or frozen must not hold up the shutdown for long.
      const withdrawnNow = await this.withdraw(Date.now() + Math.min(this.session.callTimeoutMs * 2, 3000));
      // A create still in flight when stop began may have published the node since; either our
      // delete went through, or a node we still hold goes with the session closing below.
      const visible = hadNode || this.publisher.removals > removalsBefore || this.publisher.hasNode;
      if (!withdrawnNow)
        this.log.warn(
          { event: 'withdraw-unconfirmed', node: this.nodePath, zookeeper: this.session.state },
          'could not confirm the node was removed: it goes when the session closes or expires',
        );
      await this.session.close();
      const drainMs = this.ctx.config.discovery.drainMs;
      if (!visible || drainMs <= 0) return;
      this.log.info(
        { event: 'draining', drainMs },
        `waiting ${drainMs} ms before turnserver stops, so watchers drop this host first`,
      );
      await new Promise((r) => setTimeout(r, drainMs));
    })();
    return this.stopping;
  }

  /** A drain: withdraw the node (held) until released, whatever turnserver does meanwhile. */
  async hold(held: boolean): Promise<void> {
    this.held = held;
    if (this.stopping) return;
    await this.publisher.setWanted(!held && this.ctx.supervisor.isReady, held ? 'drain' : 'drain-cancelled');
  }

  /**
   * Handover: stop measuring and leave the node as it is (ephemeral: it outlives our exit by the
   * session timeout, and the next monitor takes it over), so watchers see no withdrawal.
   */
  release(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.timer) clearInterval(this.timer);
      this.ctx.supervisor.off('ready', this.onReady);
      this.ctx.supervisor.off('exit', this.onExit);
    })();
    return this.stopping;
  }

  /**
   * Remove our node by `deadline` (epoch ms): a connection lost just before the shutdown is
   * waited for, since the library reconnects with the same session and the node is still there.
   * True when no node of ours is left in ZooKeeper.
   */
  private async withdraw(deadline: number): Promise<boolean> {
    const until = (p: Promise<unknown>) =>
      Promise.race([p, new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())).unref())]);
    await until(this.publisher.setWanted(false, 'shutdown'));
    while (this.publisher.hasNode && Date.now() < deadline) {
      await until(new Promise((r) => setTimeout(r, 100)));
      if (this.session.state === 'connected') await until(this.publisher.sync('shutdown'));
    }
    return !this.publisher.hasNode;
  }

  health(): SubsystemHealth {
    const zk = this.session.state;
    const published = this.publisher.isPublished;
    // Connected but the node that should be there is not (yet): signalling cannot pick this host.
    const problem =
      this.counterError ??
      (zk !== 'connected'
        ? (this.session.lastError ?? `ZooKeeper ${zk}`)
        : this.publisher.isWanted && !published
          ? (this.publisher.lastError ?? 'node not published yet')
          : null);
    const f = this.meter.figures;
    return {
      status: problem ? 'degraded' : 'ok',
      zookeeper: zk,
      connect: this.ctx.config.zookeeper.connect,
      sessionId: this.session.sessionId,
      node: this.nodePath,
      published,
      interface: this.iface,
      freeTraffic: f.freeTraffic,
      rxMbps: f.rxMbps,
      txMbps: f.txMbps,
      lastPublishAt: this.publisher.lastPublishAt?.toISOString() ?? null,
      expiries: this.session.expiries,
      error: problem,
    };
  }

  private registerMetrics(): void {
    const registers = [this.ctx.registry];
    const { publisher, session, meter } = this;
    new Gauge({
      name: 'turn_monitor_discovery_published',
      help: '1 while our node is in ZooKeeper',
      registers,
      collect() {
        this.set(publisher.isPublished ? 1 : 0);
      },
    });
    new Gauge({
      name: 'turn_monitor_zookeeper_connected',
      help: '1 while the ZooKeeper session is connected',
      registers,
      collect() {
        this.set(session.state === 'connected' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'turn_monitor_discovery_free_mbps',
      help: 'free bandwidth as last published (freeTraffic)',
      registers,
      collect() {
        this.set(meter.figures.freeTraffic);
      },
    });
    const expiries = new Counter({
      name: 'turn_monitor_zookeeper_session_expiries_total',
      help: 'ZooKeeper sessions that expired',
      registers,
    });
    this.session.on('expired', () => expiries.inc());
  }
}
