/** See heap-flags.js. */
export declare const HEAP_FLAGS: readonly string[];
export declare function heapFlagsOf(command: string | undefined): readonly string[];
