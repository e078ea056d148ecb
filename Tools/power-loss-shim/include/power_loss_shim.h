// An LD_PRELOAD library, loaded into `skiff serve` by skiff-torture; it exports nothing of its own.
// See power_loss_shim.c for what it does and the journal it writes.
#pragma once
