/* storage.c: implemented in progress */
#include "storage/storage.h"
