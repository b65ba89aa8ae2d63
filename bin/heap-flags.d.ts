/** See heap-flags.js. */
export declare const HEAP_FLAGS: readonly string[];
