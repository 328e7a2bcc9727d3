/* codec.c: implemented in progress */
#include "storage/codec.h"
