import * as MemoryStore from "../../src/data/MemoryStore.js"
import { runRepositorySuite } from "./repositorySuite.js"

runRepositorySuite("memory", MemoryStore.layer)
