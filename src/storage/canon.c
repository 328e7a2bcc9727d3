#include "storage/canon.h"
