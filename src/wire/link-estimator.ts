import { SampleReservoir } from '../util/sample-reservoir.ts';

/**
 * Window before the first rate sample. Small: a post-copy migration cuts over
 * at once, and every byte of a large first window sits in the link's queue
 * ahead of the first on-demand replies (4 MiB is 340 ms at 100 Mbit/s).
 * While the window limits the rate it grows by STARTUP_GAIN per round trip,
 * then by WINDOW_GAIN.
 */
export const INITIAL_WINDOW = 512 * 1024;

/** Send window over the measured bandwidth × (transmit-to-ack) product, once start-up is over. */
export const WINDOW_GAIN = 1.25;

/**
 * The window over the bandwidth-delay product while no one waits behind the bulk traffic (pre-copy:
 * the VM's reads are served at the source, nothing is fetched on demand). An ack means the peer has
 * *processed* a message, so every stall of the peer (a flush, a GC pause, a busy core) delays the
 * acks while the link could still carry data into its socket buffer; with 1.25 × the window runs
 * out after a quarter of a round trip of stall and the link idles. 2 is BBR's cwnd gain, chosen
 * for the same reason (delayed and aggregated acks). The extra bytes queue in the network, which
 * only a latency-sensitive message (an on-demand fetch, the cut-over) would wait behind: the
 * channel's owner turns this off before those exist (Channel.preferThroughput).
 */
export const THROUGHPUT_GAIN = 2;

/**
 * The same during start-up: doubling per round trip reaches 1 Gbit/s × 150 ms
 * from INITIAL_WINDOW in ~6 round trips (1.25 would take ~16, 2.4 s there).
 */
export const STARTUP_GAIN = 2;

/** Delivery-rate buckets, and how far back the rate estimate looks. */
const RATE_BUCKET_MS = 250;
const RATE_HORIZON_MS = 10_000;

export interface LinkEstimatorOptions {
  /** Bounds of the send window (unacked bulk/prefetch bytes on the link). */
  minWindow?: number;
  maxWindow?: number;
  initialWindow?: number;
}

/** What the estimator noted as a message went out; handed back when its ack arrives. */
export interface SendSample {
  /** When it was transmitted, and when the newest message acked by then had been. */
  sentAt: number;
  firstSentAtSend: number;
  /** Bytes acked so far, and when the last of them was. */
  deliveredAtSend: number;
  deliveredTimeAtSend: number;
  /** Sent with the window or the transport full: its ack measures the link, not what the sender had to send. */
  linkLimited: boolean;
}

/**
 * The link's delivery rate, round-trip times and the send window they give,
 * as BBR estimates them: from the times messages went out and their acks came
 * back, plus the ping round trips. Time is handed in with each event.
 */
export class LinkEstimator {
  private rateSamples: Array<{ at: number; bps: number; linkLimited: boolean }> = [];
  /** Link-limited rate samples of the whole life (bounded reservoir), for linkRateBps. */
  private readonly linkLimitedRates = new SampleReservoir(4096);
  private linkRateCountAt = 0;
  /** Bytes of messages the peer has acknowledged, and when the latest ack came. */
  private deliveredBytes = 0;
  private deliveredTime = 0;
  private lastAckedSentAt = 0;
  /** Start-up (BBR's): the window grows by STARTUP_GAIN per round trip until the rate stops growing. */
  private pipeFilled = false;
  private fullRateBps = 0;
  private fullRateRounds = 0;
  private roundStartedAt = 0;
  private rttSamples: Array<{ at: number; ms: number }> = [];
  private ackRttSamples: Array<{ at: number; ms: number }> = [];
  /** The delivery-rate estimate includes acks of messages sent while the link held the sender back. */
  private rateLinkLimited = false;
  private currentWindow: number;
  /** See THROUGHPUT_GAIN. */
  private throughputFirst = false;

  /** Max of the delivery-rate samples over the last 10 s. */
  deliveryRateBps: number | undefined;
  /**
   * What the link carried when it was the limit: the median of the delivery-rate samples of
   * link-limited messages over the whole life. For reports; the window uses the max filter,
   * which reads high on purpose (BBR's probe) and by up to ~20 % on a 100 Mbit/s link.
   */
  linkRateBps: number | undefined;
  /** Smallest ping round trip over the last 30 s. */
  minRttMs: number | undefined;
  /** Smallest time from transmitting a message to its ack (the peer processed it) over the last 10 s. */
  minAckRttMs: number | undefined;

  constructor(private readonly o: LinkEstimatorOptions = {}) {
    this.currentWindow = o.initialWindow ?? INITIAL_WINDOW;
  }

  /**
   * Whether nothing latency-sensitive waits behind bulk traffic: the window keeps THROUGHPUT_GAIN
   * of headroom instead of WINDOW_GAIN. Turning it off shrinks the window at once.
   */
  preferThroughput(on: boolean): void {
    this.throughputFirst = on;
    if (!on) this.currentWindow = Math.min(this.currentWindow, this.sized(WINDOW_GAIN) ?? this.currentWindow);
    else this.resize();
  }

  /** Bytes of bulk traffic the link should hold unacknowledged. */
  get window(): number {
    return this.currentWindow;
  }

  /**
   * A message goes out now. `linkIdle`: nothing is awaiting an ack, so the
   * rate interval starts now, not at the last ack (idle time is not slowness).
   */
  sent(now: number, linkIdle: boolean): SendSample {
    if (linkIdle) {
      this.deliveredTime = now;
      this.lastAckedSentAt = now;
    }
    return { sentAt: now, firstSentAtSend: this.lastAckedSentAt, deliveredAtSend: this.deliveredBytes, deliveredTimeAtSend: this.deliveredTime, linkLimited: false };
  }

  /** One ack arrived: it covered `bytes` of messages, the newest of which went out as `newest`. */
  acked(bytes: number, newest: SendSample, now: number): void {
    this.deliveredBytes += bytes;
    this.deliveredTime = now;
    this.lastAckedSentAt = newest.sentAt;
    this.addAckRtt(now - newest.sentAt, now);
    // Acks bunched by a stall at the peer come faster than the link delivered: the send interval bounds that.
    this.addRate(this.deliveredBytes - newest.deliveredAtSend, Math.max(now - newest.deliveredTimeAtSend, newest.sentAt - newest.firstSentAtSend), now, newest.linkLimited);
  }

  /** A ping's round trip. */
  pingRtt(ms: number, now: number): void {
    this.rttSamples.push({ at: now, ms: Math.max(0, ms) });
    while (this.rttSamples.length && (now - this.rttSamples[0]!.at > 30_000 || this.rttSamples.length > 1024)) this.rttSamples.shift();
    let min = Infinity;
    for (const s of this.rttSamples) min = Math.min(min, s.ms);
    this.minRttMs = min;
    this.resize();
  }

  /**
   * Delivery rate, sampled per ack as BBR does: the bytes acked between the
   * newest acked message's transmission and now, over the time since the ack
   * that preceded its transmission. The interval spans about a round trip, so
   * acks that arrive bunched (coalesced, or released after a stall at the
   * peer) do not read as a faster link, which a count per short time bucket
   * would (by up to 30 % on a 100 Mbit/s link, and the window with it: a
   * queue that on-demand replies wait behind). Max of the samples over 10 s,
   * kept per 250 ms bucket; samples from an interval under 1 ms are noise.
   */
  private addRate(bytes: number, intervalMs: number, now: number, linkLimited: boolean): void {
    if (!(intervalMs >= 1)) return;
    const slot = Math.floor(now / RATE_BUCKET_MS);
    const bps = (bytes * 8 * 1000) / intervalMs;
    if (linkLimited) {
      this.linkLimitedRates.record(bps);
      // The median costs a sort of the reservoir: refresh it every 64 samples, not on every ack.
      if (this.linkLimitedRates.count - this.linkRateCountAt >= 64 || this.linkRateBps === undefined) {
        this.linkRateCountAt = this.linkLimitedRates.count;
        this.linkRateBps = this.linkLimitedRates.percentile(50);
      }
    }
    const last = this.rateSamples.at(-1);
    if (last && last.at === slot) {
      last.bps = Math.max(last.bps, bps);
      last.linkLimited ||= linkLimited;
    } else {
      this.rateSamples.push({ at: slot, bps, linkLimited });
      while (this.rateSamples.length && slot - this.rateSamples[0]!.at > RATE_HORIZON_MS / RATE_BUCKET_MS) this.rateSamples.shift();
    }
    let max = 0;
    let limited = false;
    for (const s of this.rateSamples) {
      max = Math.max(max, s.bps);
      limited ||= s.linkLimited;
    }
    this.deliveryRateBps = max;
    this.rateLinkLimited = limited;
    if (linkLimited) this.checkPipeFilled(max, now);
    this.resize();
  }

  /**
   * Start-up ends once three round trips in a row, each with the link holding
   * the sender back, raised the rate by less than a quarter (BBR's full-pipe
   * test); from then on the window keeps only WINDOW_GAIN of headroom.
   */
  private checkPipeFilled(rateBps: number, now: number): void {
    if (this.pipeFilled) return;
    if (rateBps >= 1.25 * this.fullRateBps) {
      this.fullRateBps = rateBps;
      this.fullRateRounds = 0;
      this.roundStartedAt = now;
      return;
    }
    const round = this.minAckRttMs ?? this.minRttMs ?? 0;
    if (now - this.roundStartedAt < round) return;
    this.roundStartedAt = now;
    if (++this.fullRateRounds >= 3) this.pipeFilled = true;
  }

  /** Smallest transmit-to-ack time over the last 10 s, kept per 250 ms bucket. */
  private addAckRtt(ms: number, now: number): void {
    const slot = Math.floor(now / 250);
    const last = this.ackRttSamples.at(-1);
    if (last && last.at === slot) last.ms = Math.min(last.ms, ms);
    else {
      this.ackRttSamples.push({ at: slot, ms });
      while (this.ackRttSamples.length && slot - this.ackRttSamples[0]!.at > 40) this.ackRttSamples.shift();
    }
    let min = Infinity;
    for (const s of this.ackRttSamples) min = Math.min(min, s.ms);
    this.minAckRttMs = min;
  }

  /**
   * Window = 1.25 × the rate times the smallest transmit-to-ack time: what
   * keeps the link busy, since an ack comes after the peer has processed the
   * message (its write, one serialisation, the ack coalescing), and little
   * more, since every byte beyond it waits in the link's queue, in front of
   * any on-demand reply sent after it. (The ping's round trip leaves the
   * processing out.) THROUGHPUT_GAIN instead of 1.25 while nothing waits
   * behind the bulk traffic.
   */
  private resize(): void {
    const steadyGain = this.throughputFirst ? THROUGHPUT_GAIN : WINDOW_GAIN;
    // While window-limited the rate sample equals window/RTT, so growing by the gain per round probes for more.
    let next = this.sized(this.pipeFilled ? steadyGain : Math.max(STARTUP_GAIN, steadyGain));
    if (next === undefined) return;
    // Rate samples from a sender that neither filled the window nor the transport measure what
    // it offered, not the link (e.g. only OFFERs in flight while their answers are awaited):
    // they may grow the window, never shrink it (as BBR treats application-limited samples).
    if (!this.rateLinkLimited) next = Math.max(next, this.currentWindow);
    this.currentWindow = next;
  }

  /** `gain` × the bandwidth-delay product, within the bounds; undefined before a rate and an RTT are known. */
  private sized(gain: number): number | undefined {
    const rate = this.deliveryRateBps;
    const rtt = this.minAckRttMs ?? this.minRttMs;
    if (rate === undefined || rtt === undefined) return undefined;
    const bdp = (rate / 8) * (Math.max(rtt, 1) / 1000);
    const min = this.o.minWindow ?? 256 * 1024;
    const max = this.o.maxWindow ?? 256 * 1024 * 1024;
    return Math.min(max, Math.max(min, gain * bdp));
  }
}
