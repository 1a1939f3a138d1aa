# Copyright (c) mmdyt contributors. All rights reserved.
