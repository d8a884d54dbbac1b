'use strict';
// Failed-authentication throttling (DOOR-8), for all clients together: a leaky bucket of failed connects
// that drains 5 per second. The bucket decides when a first frame arrives (protocol.md, "Failed
// authentication"): while it holds more than 19, the frame waits for a turn, turns handed out 200 ms apart,
// first come first served; a turn handed out stands, but a newcomer that finds the bucket no longer full is
// looked at at once. Nobody is refused. Bound: at most 22 + 5·t failures are looked at in any t seconds,
// whatever the number of connections. Time is passed in, so the bound is testable.

const CAPACITY = 20;
const DRAIN_PER_SECOND = 5;
const TURN_MS = 200;
const NOTICE_MS = 10000;

class Throttle {
  /** `now` and every later time: milliseconds of a monotonic clock (the gateway: performance.now()). */
  constructor(now = performance.now()) {
    this.level = 0;
    this.at = now;
    this.nextTurn = now; // starts as the start time, never set back
    this.noticeAt = -Infinity;
    this.sinceNotice = 0;
  }

  drain(now) {
    if (now <= this.at) return;
    this.level = Math.max(0, this.level - ((now - this.at) * DRAIN_PER_SECOND) / 1000);
    this.at = now;
  }

  /** True while the bucket holds 20 or more: first frames then wait for a turn. */
  full(now) {
    this.drain(now);
    return this.level > CAPACITY - 1;
  }

  /**
   * How long (ms) a first frame arriving at `now` waits: 0 when the bucket is not full (it takes no turn
   * and does not move the next one), else until the turn it is handed, `max(next, now)`.
   */
  wait(now) {
    if (!this.full(now)) return 0;
    const turn = Math.max(now, this.nextTurn);
    this.nextTurn = turn + TURN_MS;
    return turn - now;
  }

  /**
   * Counts a failed connect at `now`. Returns the line to log at `warn` when it found the bucket full and
   * no notice was given for 10 s, else null. The line never holds a token.
   */
  failed(now) {
    const wasFull = this.full(now);
    this.level += 1;
    this.sinceNotice += 1;
    if (!wasFull || now - this.noticeAt < NOTICE_MS) return null;
    const line = `authentication throttled: ${this.sinceNotice} failed connect(s) since the last notice; further attempts wait their turn, ${TURN_MS} ms apart`;
    this.noticeAt = now;
    this.sinceNotice = 0;
    return line;
  }
}

module.exports = { Throttle, TURN_MS };
