import RWASim

/// The randomized tests' seeded generator: the simulator's SplitMix64, so a failing run repeats.
public typealias SplitMix = SeededGenerator
